package mutate

import (
	"errors"
	"fmt"

	"github.com/tidwall/gjson"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/pkg/policy"
	"github.com/silogen/kaiwo-webhook/pkg/typedpatch"
)

// Request is one admission call on an object's JSON, as the server and the offline command make it.
type Request struct {
	// Kind is the object's kind when the caller has looked it up (the server, from the admission request);
	// the zero Kind means that Kinds looks it up from Raw's apiVersion and kind.
	Kind Kind
	// Kinds are the kinds handled, for a request without Kind.
	Kinds *Registry
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

// Admit decodes raw as one of r's kinds, mutates it under pol for user, and returns the patch.
func (r *Registry) Admit(raw []byte, pol func(namespace string) *policy.Policy, user string) (*Result, error) {
	return AdmitRequest(Request{Kinds: r, Raw: raw, Policy: pol, User: user})
}

// AdmitUpdate is Admit for an UPDATE: raw is the new object, oldRaw the stored one. Kinds mutated on
// UPDATE (KindInfo.Update: the serving kinds) are mutated again, keeping the user label recorded at creation
// and holding only GPU growth to the limit; Jobs and RayJobs, whose templates Kubernetes does not let change,
// are not mutated on UPDATE.
func (r *Registry) AdmitUpdate(raw, oldRaw []byte, pol func(namespace string) *policy.Policy, user string) (*Result, error) {
	return AdmitRequest(Request{Kinds: r, Raw: raw, OldRaw: oldRaw, Policy: pol, User: user})
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
	var obj client.Object
	var err error
	kind := r.Kind
	switch {
	case kind.adapter != nil:
		obj, err = kind.Decode(r.Raw)
	case r.Kinds != nil:
		obj, kind, err = r.Kinds.Decode(r.Raw)
	default:
		err = errors.New("no kind or kinds given for the request")
	}
	if err != nil {
		return nil, err
	}
	in := Input{Kind: kind, Object: obj, Raw: r.Raw, Policy: r.Policy(obj.GetNamespace()), User: r.User, Create: r.Create}
	if r.OldRaw != nil {
		tm := gjson.GetManyBytes(r.OldRaw, "apiVersion", "kind")
		if gvk := schema.FromAPIVersionAndKind(tm[0].String(), tm[1].String()); gvk != kind.GVK && checkObject(r.OldRaw) == nil {
			return nil, fmt.Errorf("the old object is a %s, the new one a %s", gvk.Kind, kind.GVK.Kind)
		}
		old, err := kind.Decode(r.OldRaw)
		if err != nil {
			return nil, fmt.Errorf("the old object: %w", err)
		}
		if !kind.Update {
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
