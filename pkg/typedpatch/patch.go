package typedpatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	"k8s.io/apimachinery/pkg/util/sets"
	sjson "sigs.k8s.io/json"
)

// Diff returns the JSON patch (RFC 6902) from raw, the JSON of original, to mutated, a changed copy of
// original of the same Go type. It diffs the Go values (see typedDiff), so it holds only what the
// mutation changed: fields the Go types do not know (a newer CRD, an alpha field) survive, and values
// the types normalize keep the spelling raw has. Each operation is then fitted to raw, where the
// encoding of the Go types and raw differ in shape (see fitToRaw). Types the walk does not model are
// diffed through their JSON encodings instead (see jsonDiff).
func Diff(raw []byte, original, mutated any) ([]Operation, error) {
	d, err := typedDiff(original, mutated)
	if errors.Is(err, errNoTypedDiff) {
		return jsonDiff(raw, original, mutated)
	}
	if err != nil || len(d.ops) == 0 {
		return nil, err
	}
	root := reflect.ValueOf(mutated)
	ops, err := fitToRaw(d.ops, raw, func(segs []string) (any, error) {
		v, err := valueAt(root, segs, d.moved)
		if err != nil {
			return nil, err
		}
		return jsonValue(v), nil
	})
	if errors.Is(err, errNoTypedDiff) {
		return jsonDiff(raw, original, mutated)
	}
	return ops, err
}

// jsonDiff is Diff for Go types the typed diff does not model: it diffs their JSON encodings.
func jsonDiff(raw []byte, original, mutated any) ([]Operation, error) {
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
	// CreatePatch walks maps in random order; a stable order makes the patch deterministic.
	// Array indexes compare as numbers, so appended elements stay in ascending order.
	sort.SliceStable(ops, func(i, j int) bool { return pathLess(ops[i].Path, ops[j].Path) })
	removeFromTheEnd(ops)
	var afterDoc any // decoded when first needed
	return fitToRaw(ops, raw, func(segs []string) (any, error) {
		if afterDoc == nil {
			if afterDoc, err = decodeJSON(after); err != nil {
				return nil, fmt.Errorf("decoding mutated object: %w", err)
			}
		}
		v := afterDoc
		for _, s := range segs {
			v, _ = pointerChild(v, s)
		}
		return v, nil
	})
}

// removeFromTheEnd reverses each run of removals of elements of one array, which the sort put in
// ascending order, so that every index is still there when its removal runs.
func removeFromTheEnd(ops []jsonpatch.Operation) {
	parent := func(op jsonpatch.Operation) (string, bool) {
		i := strings.LastIndexByte(op.Path, '/')
		_, err := strconv.Atoi(op.Path[i+1:])
		return op.Path[:max(i, 0)], op.Operation == "remove" && i >= 0 && err == nil
	}
	for i := 0; i < len(ops); {
		p, ok := parent(ops[i])
		j := i + 1
		for ok && j < len(ops) {
			if q, ok2 := parent(ops[j]); !ok2 || q != p {
				break
			}
			j++
		}
		slices.Reverse(ops[i:j])
		i = j
	}
}

// fitToRaw makes ops, a diff of the Go encodings, apply to raw. The encodings differ from raw where the
// Go types write what raw leaves out (an empty struct, resources: {}) or leave out what raw writes (a
// zero value, an unknown field). So: an operation whose parent raw lacks sets the whole subtree of the
// mutated object (after) at the first missing ancestor instead; a replace of what raw lacks is an add,
// and dropped when raw already holds the value; a remove of what raw lacks is dropped. raw is read only
// along the operations' paths.
func fitToRaw(ops []jsonpatch.Operation, raw []byte, after func(segs []string) (any, error)) ([]jsonpatch.Operation, error) {
	doc := newRawDoc(raw)
	lifted := sets.New[string]()
	kept := make([]jsonpatch.Operation, 0, len(ops))
	for _, op := range ops {
		// n is the end of the deepest container of raw on the path. A parent already reached is one, and
		// so is each of its ancestors: the common case, as operations come in path order, needs no walk.
		n, end := 0, strings.LastIndexByte(op.Path, '/')
		if end > 0 && doc.reached(op.Path[:end]) {
			n = end
		} else {
			for i := 1; i < len(op.Path); i++ {
				if op.Path[i] != '/' {
					continue
				}
				if next := doc.at(op.Path[:i]); !next.IsObject() && !next.IsArray() {
					break
				}
				n = i
			}
		}
		if n < end {
			if op.Operation == "remove" {
				continue
			}
			p := op.Path
			if i := strings.IndexByte(op.Path[n+1:], '/'); i >= 0 {
				p = op.Path[:n+1+i]
			}
			if lifted.Has(p) {
				continue
			}
			lifted.Insert(p)
			v, err := after(strings.Split(p, "/")[1:])
			if err != nil {
				return nil, err
			}
			verb := "add"
			if doc.at(p).Exists() { // null or a scalar where the Go type has a container
				verb = "replace"
			}
			kept = append(kept, jsonpatch.NewOperation(verb, p, v))
			continue
		}
		if op.Operation == "add" {
			// An add sets an object's member whether raw has it or not, and the typed diff adds array
			// elements only past the end, which raw shares: no need to read the value.
			kept = append(kept, op)
			continue
		}
		cur := doc.at(op.Path)
		switch {
		case !cur.Exists() && op.Operation == "remove":
		case !cur.Exists():
			op.Operation = "add" // a replace of what raw lacks
			kept = append(kept, op)
		case op.Operation == "remove" || !sameJSON(cur.Raw, op.Value):
			kept = append(kept, op)
		}
	}
	return kept, nil
}

// sameJSON reports whether raw, a JSON value, and v, a Go value, are the same JSON once decoded; integers
// decode exactly, so a number float64 cannot hold is not rounded into a match.
func sameJSON(raw string, v any) bool {
	vb, err := json.Marshal(v)
	if err != nil {
		return false
	}
	if string(vb) == raw {
		return true
	}
	var a, b any
	if sjson.UnmarshalCaseSensitivePreserveInts([]byte(raw), &a) != nil || sjson.UnmarshalCaseSensitivePreserveInts(vb, &b) != nil {
		return false
	}
	return reflect.DeepEqual(a, b)
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
