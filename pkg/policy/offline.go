package policy

import (
	"fmt"
	"io"
)

// LoadResolved reads policies as Load does, validates and compiles each (an invalid policy is an error
// naming it), and resolves the effective policy of a namespace with the labels nsLabels: what offline
// use needs in place of the server's Index.
func LoadResolved(r io.Reader, nsLabels map[string]string) (*Policy, error) {
	policies, flavors, err := Load(r)
	if err != nil {
		return nil, err
	}
	compiled := make([]*Compiled, 0, len(policies))
	for i := range policies {
		c, errs := Compile(&policies[i], flavors.Lookup)
		if len(errs) > 0 {
			return nil, fmt.Errorf("KaiwoPolicy %q: %w", policies[i].Name, errs.ToAggregate())
		}
		compiled = append(compiled, c)
	}
	return Resolve(nsLabels, compiled), nil
}
