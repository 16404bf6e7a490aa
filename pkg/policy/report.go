package policy

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/silogen/kaiwo-webhook/api/v1alpha1"
)

// Report is what one KaiwoPolicy's status says about it, computed from the policy, every policy,
// the namespaces and the ResourceFlavors. It is a pure function of them (Reporter).
type Report struct {
	// Errors are the policy's validation errors: Valid is False while there are any.
	Errors field.ErrorList
	// FailOpen are the parts resolved fail-open (e.g. gpusPerNodeFrom without its ResourceFlavor).
	FailOpen []string
	// Ties name the other policies of the same priority that select one of its namespaces.
	Ties []string
	// Namespaces are the namespaces it selects now, sorted.
	Namespaces []string
	// Effective maps each of those namespaces to its effective policy, for checks that need one.
	Effective map[string]*Policy
}

// MakeReport reports on policy name among all, over namespaces (name to labels) and flavors.
func MakeReport(name string, all []v1alpha1.KaiwoPolicy, namespaces map[string]map[string]string, flavors Flavors) Report {
	compiled := make([]*Compiled, 0, len(all))
	var self *Compiled
	for i := range all {
		c, _ := Compile(&all[i], flavors.Lookup)
		compiled = append(compiled, c)
		if all[i].Name == name {
			self = c
		}
	}
	if self == nil {
		return Report{}
	}
	sortCompiled(compiled)
	r := Report{Errors: self.Errors, FailOpen: self.Warnings, Effective: map[string]*Policy{}}
	ties := map[string][]string{}
	for ns, ls := range namespaces {
		set := labels.Set(ls)
		if !self.Selector.Matches(set) {
			continue
		}
		r.Namespaces = append(r.Namespaces, ns)
		var matched []*Compiled
		for _, c := range compiled {
			if c.Selector.Matches(set) {
				matched = append(matched, c)
				if c != self && c.Priority == self.Priority {
					ties[c.Name] = append(ties[c.Name], ns)
				}
			}
		}
		r.Effective[ns] = merge(matched)
	}
	slices.Sort(r.Namespaces)
	for _, other := range slices.Sorted(maps.Keys(ties)) {
		r.Ties = append(r.Ties, fmt.Sprintf("KaiwoPolicy %q has the same priority %d and also selects %s; the name that sorts first wins",
			other, self.Priority, FewNames("namespace", ties[other])))
	}
	return r
}

// FewNames lists up to five names, sorted, and how many more: "namespace a" or "namespaces a, b and 3 more".
func FewNames(noun string, names []string) string {
	names = slices.Sorted(slices.Values(names))
	if len(names) != 1 {
		noun += "s"
	}
	const max = 5
	if len(names) <= max {
		return noun + " " + strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s %s and %d more", noun, strings.Join(names[:max], ", "), len(names)-max)
}
