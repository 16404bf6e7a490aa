package mutate

import (
	"errors"
	"fmt"

	"github.com/silogen/kaiwo-webhook/pkg/policy"
	"github.com/silogen/kaiwo-webhook/pkg/typedpatch"
)

// Request is one admission call on an object's JSON, as the server and the offline command make it.
type Request struct {
	// Raw is the object.
	Raw []byte
	// OldRaw is the stored object of an UPDATE; nil on CREATE.
	OldRaw []byte
	// Create says the object is being created: a record of what Kaiwo placed that it brings is the
	// user's text. Offline, with neither Create nor OldRaw, the object's own record counts.
	Create bool
	// Policy gives the effective policy of the object's namespace.
	Policy func(namespace string) *policy.Policy
	// User is the requesting user.
	User string
	// Stop, if not nil, is called between the stages (decode, mutate, patch, encode); its error ends
	// the call: the caller's deadline, checked without the core knowing of it.
	Stop func() error
}

// Admit decodes raw, mutates it under pol for user, and returns the patch.
func Admit(raw []byte, pol func(namespace string) *policy.Policy, user string) (*Result, error) {
	return AdmitRequest(Request{Raw: raw, Policy: pol, User: user})
}

// AdmitUpdate is Admit for an UPDATE: raw is the new object, oldRaw the stored one. Serving kinds are
// mutated again, keeping the user label recorded at creation and holding only GPU growth to the limit;
// Jobs and RayJobs, whose templates Kubernetes does not let change, are not mutated on UPDATE.
func AdmitUpdate(raw, oldRaw []byte, pol func(namespace string) *policy.Policy, user string) (*Result, error) {
	return AdmitRequest(Request{Raw: raw, OldRaw: oldRaw, Policy: pol, User: user})
}

// AdmitRequest runs one admission call: size limits, decode, mutate, patch and its encoding.
func AdmitRequest(r Request) (*Result, error) {
	stop := r.Stop
	if stop == nil {
		stop = func() error { return nil }
	}
	if err := stop(); err != nil {
		return nil, err
	}
	if d := checkSize(r.Raw); d != nil {
		return nil, d
	}
	obj, kind, err := Decode(r.Raw)
	if err != nil {
		return nil, err
	}
	in := Input{Object: obj, Raw: r.Raw, Policy: r.Policy(obj.GetNamespace()), User: r.User, Create: r.Create}
	if r.OldRaw != nil {
		old, oldKind, err := Decode(r.OldRaw)
		if err != nil {
			return nil, fmt.Errorf("the old object: %w", err)
		}
		if oldKind.GVK != kind.GVK {
			return nil, fmt.Errorf("the old object is a %s, the new one a %s", oldKind.GVK.Kind, kind.GVK.Kind)
		}
		if !kind.Serving {
			return &Result{Kind: kind}, nil
		}
		in.Old, in.OldRaw = old, r.OldRaw
	}
	if err := stop(); err != nil {
		return nil, err
	}
	out, err := Mutate(in)
	if err != nil {
		return nil, err
	}
	res := &Result{Kind: kind, Managed: out.Managed, Warnings: out.Warnings, Features: out.Features}
	if !out.Managed {
		return res, nil
	}
	if err := stop(); err != nil {
		return nil, err
	}
	if res.Patch, err = typedpatch.Diff(r.Raw, obj, out.Object); err != nil {
		return nil, err
	}
	if d := checkPatch(len(res.Patch), nil); d != nil {
		return nil, d
	}
	if len(res.Patch) == 0 {
		return res, nil
	}
	if err := stop(); err != nil {
		return nil, err
	}
	if res.PatchJSON, err = typedpatch.Encode(res.Patch); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEncodePatch, err)
	}
	if d := checkPatch(len(res.Patch), res.PatchJSON); d != nil {
		return nil, d
	}
	return res, nil
}

// Result is one admission decision on a raw object: Patch is the JSON patch (RFC 6902) the API server
// gets, from typedpatch.Diff.
type Result struct {
	Kind     Kind
	Managed  bool
	Patch    []typedpatch.Operation
	Warnings []string
	Features []string
	// PatchJSON is Patch encoded (typedpatch.Encode), nil when there is no patch.
	PatchJSON []byte
}

// ErrEncodePatch marks a patch that could not be encoded, which the Go types of the supported kinds
// rule out.
var ErrEncodePatch = errors.New("encoding the patch")
