package mutate

import (
	"bytes"
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

// Patch returns the JSON patch from raw, the object as sent, to mutated. It diffs the Go encodings of
// original and mutated, so it holds only what the mutation changed: fields the Go types do not know (a
// newer CRD, an alpha field) survive, and values the types normalize keep the user's spelling, as in
// controller-runtime's defaulting webhook. Each operation is then fitted to raw, where the encoding of
// the Go types and raw differ in shape (see fitToRaw).
func Patch(raw []byte, original, mutated client.Object) ([]jsonpatch.Operation, error) {
	before, err := json.Marshal(original)
	if err != nil {
		return nil, fmt.Errorf("encoding original object: %w", err)
	}
	after, err := json.Marshal(mutated)
	if err != nil {
		return nil, fmt.Errorf("encoding mutated object: %w", err)
	}
	if bytes.Equal(before, after) {
		return nil, nil // a second pass: nothing changed
	}
	ops, err := jsonpatch.CreatePatch(before, after)
	if err != nil {
		return nil, fmt.Errorf("computing patch: %w", err)
	}
	if len(ops) == 0 {
		return nil, nil
	}
	kept, err := fitToRaw(ops, raw, after)
	if err != nil || len(kept) == 0 {
		return nil, err
	}
	// CreatePatch walks maps in random order; a stable order makes the patch deterministic.
	// Array indexes compare as numbers, so appended elements stay in ascending order.
	sort.SliceStable(kept, func(i, j int) bool { return pathLess(kept[i].Path, kept[j].Path) })
	return kept, nil
}

// fitToRaw makes ops, a diff of the Go encodings, apply to raw. The encodings differ from raw where the
// Go types write what raw leaves out (an empty struct, resources: {}) or leave out what raw writes (a
// zero value, an unknown field). So: an operation whose parent raw lacks adds the whole subtree of
// after at the first missing ancestor instead; an add of a key raw has is a replace, dropped when raw
// already holds the value; a remove of what raw lacks is dropped.
func fitToRaw(ops []jsonpatch.Operation, raw, after []byte) ([]jsonpatch.Operation, error) {
	var doc any // shapes and values only: plain numbers do, and spare the copy a json.Decoder makes
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("decoding object: %w", err)
	}
	var afterDoc any // decoded when first needed
	lifted := sets.New[string]()
	kept := make([]jsonpatch.Operation, 0, len(ops))
	for _, op := range ops {
		segs := strings.Split(op.Path, "/")[1:]
		// node is the deepest container of raw on the path, at depth n.
		node, n := doc, 0
		for ; n < len(segs)-1; n++ {
			next, ok := pointerChild(node, segs[n])
			if !ok || !isContainer(next) {
				break
			}
			node = next
		}
		if n < len(segs)-1 {
			if op.Operation == "remove" {
				continue
			}
			p := "/" + strings.Join(segs[:n+1], "/")
			if lifted.Has(p) {
				continue
			}
			lifted.Insert(p)
			if afterDoc == nil {
				var err error
				if afterDoc, err = decodeJSON(after); err != nil {
					return nil, fmt.Errorf("decoding mutated object: %w", err)
				}
			}
			v := afterDoc
			for _, s := range segs[:n+1] {
				v, _ = pointerChild(v, s)
			}
			kept = append(kept, jsonpatch.NewOperation("add", p, v))
			continue
		}
		cur, exists := pointerChild(node, segs[n])
		switch {
		case !exists && op.Operation == "remove":
		case !exists:
			// An add of a key or of an element past the end; a replace of a key raw lacks is an add.
			op.Operation = "add"
			kept = append(kept, op)
		case op.Operation == "remove":
			kept = append(kept, op)
		case !sameJSON(cur, op.Value):
			if _, inArray := node.([]any); !inArray {
				op.Operation = "replace" // an add of a key raw has: the Go type dropped its value
			}
			kept = append(kept, op)
		}
	}
	return kept, nil
}

// sameJSON reports whether two decoded JSON values encode alike; a number that float64 cannot hold
// exactly compares unequal, which keeps the operation.
func sameJSON(a, b any) bool {
	ab, aerr := json.Marshal(a)
	bb, berr := json.Marshal(b)
	return aerr == nil && berr == nil && bytes.Equal(ab, bb)
}

func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber() // a lifted subtree keeps its numbers exactly
	var v any
	err := d.Decode(&v)
	return v, err
}

var pointerUnescape = strings.NewReplacer("~1", "/", "~0", "~")

// pointerChild is the child of v named by one JSON pointer segment.
func pointerChild(v any, seg string) (any, bool) {
	switch v := v.(type) {
	case map[string]any:
		c, ok := v[pointerUnescape.Replace(seg)]
		return c, ok
	case []any:
		i, err := strconv.Atoi(seg)
		if err != nil || i < 0 || i >= len(v) {
			return nil, false
		}
		return v[i], true
	}
	return nil, false
}

func isContainer(v any) bool {
	switch v.(type) {
	case map[string]any, []any:
		return true
	}
	return false
}

func pathLess(a, b string) bool {
	for {
		as, arest, amore := strings.Cut(a, "/")
		bs, brest, bmore := strings.Cut(b, "/")
		if as != bs {
			if maybeNumber(as) && maybeNumber(bs) {
				an, aerr := strconv.Atoi(as)
				bn, berr := strconv.Atoi(bs)
				if aerr == nil && berr == nil {
					return an < bn
				}
			}
			return as < bs
		}
		if !amore || !bmore {
			return !amore && bmore // equal so far: the shorter path first
		}
		a, b = arest, brest
	}
}

// maybeNumber reports whether strconv.Atoi could accept s; it spares the sort Atoi's error allocations.
func maybeNumber(s string) bool {
	return s != "" && strings.Trim(s, "0123456789+-") == ""
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
