package mutate

import (
	"fmt"

	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// AdmitUpdate is Admit for an UPDATE: raw is the new object, oldRaw the stored one. Serving kinds are
// mutated again, keeping the user label recorded at creation and holding only GPU growth to the limit;
// Jobs and RayJobs, whose templates Kubernetes does not let change, are not mutated on UPDATE.
func AdmitUpdate(raw, oldRaw []byte, pol func(namespace string) *policy.Policy, user string) (*Result, error) {
	obj, kind, err := Decode(raw)
	if err != nil {
		return nil, err
	}
	old, oldKind, err := Decode(oldRaw)
	if err != nil {
		return nil, fmt.Errorf("the old object: %w", err)
	}
	if oldKind.GVK != kind.GVK {
		return nil, fmt.Errorf("the old object is a %s, the new one a %s", oldKind.GVK.Kind, kind.GVK.Kind)
	}
	if !kind.Serving {
		return &Result{Kind: kind}, nil
	}
	out, err := Mutate(Input{Object: obj, Raw: raw, Policy: pol(obj.GetNamespace()), User: user, Old: old})
	if err != nil {
		return nil, err
	}
	res := &Result{Kind: kind, Managed: out.Managed, Warnings: out.Warnings, Features: out.Features}
	if !out.Managed {
		return res, nil
	}
	res.Patch, err = Patch(raw, obj, out.Object)
	return res, err
}
