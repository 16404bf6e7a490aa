package mutate

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
	"unsafe"

	jsonpatchapply "github.com/evanphx/json-patch/v5"
	"github.com/tidwall/gjson"
	"gomodules.xyz/jsonpatch/v2"
	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/controller-runtime/pkg/client"
	sjson "sigs.k8s.io/json"

	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// Patch returns the JSON patch from raw, the object as sent, to mutated. It diffs the Go values
// original and mutated (see typedDiff), so it holds only what the mutation changed: fields the Go types
// do not know (a newer CRD, an alpha field) survive, and values the types normalize keep the user's
// spelling, as in controller-runtime's defaulting webhook. Each operation is then fitted to raw, where
// the encoding of the Go types and raw differ in shape (see fitToRaw).
func Patch(raw []byte, original, mutated client.Object) ([]jsonpatch.Operation, error) {
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

// jsonDiff is Patch for Go types the typed diff does not model: it diffs their JSON encodings.
func jsonDiff(raw []byte, original, mutated client.Object) ([]jsonpatch.Operation, error) {
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
		// n is the end of the deepest container of raw on the path.
		n := 0
		for i := 1; i < len(op.Path); i++ {
			if op.Path[i] != '/' {
				continue
			}
			if next := doc.at(op.Path[:i]); !next.IsObject() && !next.IsArray() {
				break
			}
			n = i
		}
		if end := strings.LastIndexByte(op.Path, '/'); n < end {
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

// rawDoc reads raw by JSON pointer, remembering each container it reached.
type rawDoc struct {
	root gjson.Result
	seen map[string]string // the raw text of each container reached, by pointer
}

func newRawDoc(raw []byte) *rawDoc {
	return &rawDoc{root: parseView(raw), seen: map[string]string{}}
}

// parseView parses raw in place, without the copy gjson.ParseBytes makes: raw is only read, and the
// results do not outlive it.
func parseView(raw []byte) gjson.Result {
	return gjson.Parse(unsafe.String(unsafe.SliceData(raw), len(raw)))
}

// at is the value at the JSON pointer p; it does not exist when raw has nothing there.
func (d *rawDoc) at(p string) gjson.Result {
	if p == "" {
		return d.root
	}
	if r, ok := d.seen[p]; ok {
		return gjson.Parse(r) // a container: its type is its first byte, nothing is scanned
	}
	i := strings.LastIndexByte(p, '/')
	parent, seg := d.at(p[:i]), p[i+1:]
	var r gjson.Result
	switch {
	case parent.IsObject():
		key := unescapePointer(seg)
		if key == "" {
			parent.ForEach(func(k, v gjson.Result) bool {
				if k.String() == key {
					r = v
				}
				return true
			})
		} else {
			r = parent.Get(gjson.Escape(key))
		}
	case parent.IsArray():
		if i, err := strconv.Atoi(seg); err == nil && i >= 0 && strconv.Itoa(i) == seg {
			r = parent.Get(seg)
		}
	}
	if r.IsObject() || r.IsArray() {
		d.seen[p] = r.Raw // containers are read again, leaves once
	}
	return r
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

// EncodePatch writes ops as JSON, byte for byte as encoding/json writes them, in one pass: each value
// encoded once, without the re-scan encoding/json gives what a MarshalJSON method returns.
func EncodePatch(ops []jsonpatch.Operation) ([]byte, error) {
	if ops == nil {
		return []byte("null"), nil
	}
	var buf bytes.Buffer
	buf.Grow(96*len(ops) + 2)
	enc := json.NewEncoder(&buf) // escapes as json.Marshal does; ends each value with a newline, cut below
	put := func(v any) error {
		if err := enc.Encode(v); err != nil {
			return err
		}
		buf.Truncate(buf.Len() - 1)
		return nil
	}
	buf.WriteByte('[')
	for i, op := range ops {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`{"op":`)
		if err := put(op.Operation); err != nil {
			return nil, err
		}
		buf.WriteString(`,"path":`)
		if err := put(op.Path); err != nil {
			return nil, err
		}
		if op.Value != nil || op.Operation == "add" || op.Operation == "replace" {
			buf.WriteString(`,"value":`)
			if err := put(op.Value); err != nil {
				return nil, fmt.Errorf("encoding the value of %s %s: %w", op.Operation, op.Path, err)
			}
		}
		buf.WriteByte('}')
	}
	buf.WriteByte(']')
	return buf.Bytes(), nil
}

// ApplyPatch applies ops to raw, as the API server would.
func ApplyPatch(raw []byte, ops []jsonpatch.Operation) ([]byte, error) {
	if len(ops) == 0 {
		return raw, nil
	}
	b, err := EncodePatch(ops)
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
	return AdmitUpdate(raw, nil, pol, user)
}

// AdmitUpdate is Admit for an UPDATE: oldRaw is the stored object (nil on CREATE), whose record
// tells Kaiwo's earlier values from the user's.
func AdmitUpdate(raw, oldRaw []byte, pol func(namespace string) *policy.Policy, user string) (*Result, error) {
	return admit(raw, oldRaw, false, pol, user)
}

// AdmitCreate is Admit for the server's CREATE: a record the new object brings is not Kaiwo's.
func AdmitCreate(raw []byte, pol func(namespace string) *policy.Policy, user string) (*Result, error) {
	return admit(raw, nil, true, pol, user)
}

func admit(raw, oldRaw []byte, create bool, pol func(namespace string) *policy.Policy, user string) (*Result, error) {
	obj, kind, err := Decode(raw)
	if err != nil {
		return nil, err
	}
	in := Input{Object: obj, Raw: raw, Policy: pol(obj.GetNamespace()), User: user, Create: create}
	if len(oldRaw) > 0 {
		if in.Old, _, err = Decode(oldRaw); err != nil {
			return nil, fmt.Errorf("the old object: %w", err)
		}
		in.OldRaw = oldRaw
	}
	out, err := Mutate(in)
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
