package mutate

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	jsonpatchapply "github.com/evanphx/json-patch/v5"
	"gomodules.xyz/jsonpatch/v2"
	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// Patch returns the JSON patch from raw, the object as sent, to mutated. Operations that decoding and
// re-encoding alone would cause are dropped: removals of fields the Go types do not know (a newer CRD,
// an alpha field), and re-encodings of values the types normalize. So the patch holds only what the
// mutation changed, and unknown fields survive, as in controller-runtime's defaulting webhook.
func Patch(raw []byte, original, mutated client.Object) ([]jsonpatch.Operation, error) {
	after, err := json.Marshal(mutated)
	if err != nil {
		return nil, fmt.Errorf("encoding mutated object: %w", err)
	}
	ops, err := jsonpatch.CreatePatch(raw, after)
	if err != nil {
		return nil, fmt.Errorf("computing patch: %w", err)
	}
	if len(ops) == 0 {
		return nil, nil
	}
	before, err := json.Marshal(original)
	if err != nil {
		return nil, fmt.Errorf("encoding original object: %w", err)
	}
	decoded, err := jsonpatch.CreatePatch(raw, before)
	if err != nil {
		return nil, fmt.Errorf("computing patch: %w", err)
	}
	noise := sets.New[string]()
	for _, op := range decoded {
		noise.Insert(op.Json())
	}
	kept := make([]jsonpatch.Operation, 0, len(ops))
	for _, op := range ops {
		if !noise.Has(op.Json()) {
			kept = append(kept, op)
		}
	}
	if len(kept) == 0 {
		return nil, nil
	}
	// CreatePatch walks maps in random order; a stable order makes the patch deterministic.
	// Array indexes compare as numbers, so appended elements stay in ascending order.
	sort.SliceStable(kept, func(i, j int) bool { return pathLess(kept[i].Path, kept[j].Path) })
	return kept, nil
}

func pathLess(a, b string) bool {
	as, bs := strings.Split(a, "/"), strings.Split(b, "/")
	for i := 0; i < len(as) && i < len(bs); i++ {
		if as[i] == bs[i] {
			continue
		}
		an, aerr := strconv.Atoi(as[i])
		bn, berr := strconv.Atoi(bs[i])
		if aerr == nil && berr == nil {
			return an < bn
		}
		return as[i] < bs[i]
	}
	return len(as) < len(bs)
}

// ApplyPatch applies ops to raw, as the API server would.
func ApplyPatch(raw []byte, ops []jsonpatch.Operation) ([]byte, error) {
	if len(ops) == 0 {
		return raw, nil
	}
	b, err := json.Marshal(ops)
	if err != nil {
		return nil, err
	}
	p, err := jsonpatchapply.DecodePatch(b)
	if err != nil {
		return nil, err
	}
	return p.Apply(raw)
}

// Result is one admission decision on a raw object.
type Result struct {
	Kind     Kind
	Managed  bool
	Patch    []jsonpatch.Operation
	Warnings []string
	Features []string
}

// Admit decodes raw, mutates it under pol for user, and returns the patch. It is what the server and
// the offline command share.
func Admit(raw []byte, pol func(namespace string) *policy.Policy, user string) (*Result, error) {
	obj, kind, err := Decode(raw)
	if err != nil {
		return nil, err
	}
	out, err := Mutate(Input{Object: obj, Raw: raw, Policy: pol(obj.GetNamespace()), User: user})
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
