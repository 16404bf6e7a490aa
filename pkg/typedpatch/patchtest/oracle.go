// Package patchtest is an oracle for JSON patches of typed objects, for tests and fuzz targets. It
// shares no code with package typedpatch: the patch is encoded by encoding/json, applied by
// github.com/evanphx/json-patch, decoded by sigs.k8s.io/json (case-sensitive, as the API server
// decodes), compared with k8s.io/apimachinery's semantic equality, and raw is walked with gjson.
package patchtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	jsonpatchapply "github.com/evanphx/json-patch/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/tidwall/gjson"
	"gomodules.xyz/jsonpatch/v2"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	sjson "sigs.k8s.io/json"
)

// Check applies ops to raw and reports, as an error, the first way the result falls short:
//
//   - ops are add, remove and replace only, and they apply;
//   - the patched document decodes into mutated's Go type and equals mutated (semantically:
//     quantities by value, nil and empty lists and maps alike);
//   - every leaf of raw (a scalar, or an empty object or list) whose value the mutation did not
//     change survives byte for byte at its place: fields the Go type does not know, values it would
//     write otherwise (a quantity "1000m" for "1", 1.0e2 for 100). A leaf counts as changed when the
//     Go encodings of decode(raw) and mutated differ at its path, above it or below it; lists are
//     compared by position, so after an element removed from the middle of a list, the elements
//     behind it count as changed. Raw that is not valid UTF-8, which JSON text must be and an API
//     server never sends, is not checked for this: the applier writes its bytes otherwise.
//
// mutated is a pointer to a struct, such as a client.Object.
func Check(raw []byte, ops []jsonpatch.Operation, mutated any) error {
	patched, err := apply(raw, ops)
	if err != nil {
		return err
	}
	if err := decodesTo(patched, mutated); err != nil {
		return err
	}
	if !utf8.Valid(raw) {
		return nil
	}
	return leavesSurvive(raw, patched, ops, mutated)
}

// apply applies the whole patch at once, as the API server does. HTML characters are not escaped, so
// a leaf is written as raw wrote it.
func apply(raw []byte, ops []jsonpatch.Operation) ([]byte, error) {
	if len(ops) == 0 {
		return raw, nil
	}
	for _, op := range ops {
		switch op.Operation {
		case "add", "remove", "replace":
		default:
			return nil, fmt.Errorf("operation %q at %s: want add, remove or replace", op.Operation, op.Path)
		}
	}
	b, err := json.Marshal(ops)
	if err != nil {
		return nil, fmt.Errorf("encoding the patch: %w", err)
	}
	p, err := jsonpatchapply.DecodePatch(b)
	if err != nil {
		return nil, fmt.Errorf("decoding the patch %s: %w", b, err)
	}
	opts := jsonpatchapply.NewApplyOptions()
	opts.EscapeHTML = false
	out, err := p.ApplyWithOptions(raw, opts)
	if err != nil {
		return nil, fmt.Errorf("the patch does not apply: %w\npatch: %s", err, b)
	}
	return out, nil
}

func decodesTo(patched []byte, mutated any) error {
	t := reflect.TypeOf(mutated)
	if t == nil || t.Kind() != reflect.Pointer {
		return fmt.Errorf("mutated is a %T, want a pointer", mutated)
	}
	got := reflect.New(t.Elem()).Interface()
	if err := sjson.UnmarshalCaseSensitivePreserveInts(patched, got); err != nil {
		return fmt.Errorf("the patched document does not decode into %T: %w\n%s", mutated, err, patched)
	}
	if !apiequality.Semantic.DeepEqual(got, mutated) {
		return fmt.Errorf("the patched document decodes to something else than the mutated object (-mutated +decoded):\n%s\npatched: %s", diff(mutated, got), patched)
	}
	return nil
}

// diff describes how a and b differ, for a message; Go types with unexported fields that go-cmp will
// not open are shown as JSON.
func diff(a, b any) (s string) {
	defer func() {
		if recover() != nil {
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			s = fmt.Sprintf("mutated: %s\ndecoded: %s", ja, jb)
		}
	}()
	return cmp.Diff(a, b, cmpopts.EquateEmpty())
}

// leaf is a scalar or an empty container of raw: its path (segments, unescaped) and its bytes.
type leaf struct {
	at  []string
	raw string
}

func leavesSurvive(raw, patched []byte, ops []jsonpatch.Operation, mutated any) error {
	original := reflect.New(reflect.TypeOf(mutated).Elem()).Interface()
	if err := sjson.UnmarshalCaseSensitivePreserveInts(raw, original); err != nil {
		return fmt.Errorf("raw does not decode into %T: %w", mutated, err)
	}
	before, err := json.Marshal(original)
	if err != nil {
		return err
	}
	after, err := json.Marshal(mutated)
	if err != nil {
		return err
	}
	var changed [][]string
	differences(gjson.ParseBytes(before), gjson.ParseBytes(after), reflect.TypeOf(mutated), "", nil, &changed)
	var leaves []leaf
	collect(gjson.ParseBytes(raw), nil, &leaves)
	out := gjson.ParseBytes(patched)
	for _, l := range leaves {
		if slices.ContainsFunc(changed, func(c []string) bool { return hasPrefix(c, l.at) || hasPrefix(l.at, c) }) {
			continue
		}
		got, want := at(out, l.at), l.raw
		if strings.HasPrefix(want, "{") || strings.HasPrefix(want, "[") {
			got.Raw, want = compact(got.Raw), compact(want) // the applier drops whitespace
		}
		if !got.Exists() || got.Raw != want {
			return fmt.Errorf("the leaf %s of raw is %s in the patched document, want it unchanged as %s (the mutation does not change it)\npatch: %s\npatched: %s",
				pointer(l.at), orMissing(got), want, mustJSON(ops), patched)
		}
	}
	return nil
}

// differences appends the paths at which a and b, two encodings of the Go type t, differ: a member or
// element only one has, or a value that differs. List elements are compared by position, and an
// element is changed whole where it is another one: its merge key (the list field's patchMergeKey,
// such as a container's name) differs, or, in a list without one that changed length, from the
// first element that differs on.
func differences(a, b gjson.Result, t reflect.Type, key string, path []string, out *[][]string) {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case a.IsObject() && b.IsObject():
		keys := map[string]bool{}
		for _, r := range []gjson.Result{a, b} {
			r.ForEach(func(k, _ gjson.Result) bool {
				keys[k.String()] = true
				return true
			})
		}
		for k := range keys {
			mt, mkey := member(t, k)
			differences(at(a, []string{k}), at(b, []string{k}), mt, mkey, append(slices.Clip(path), k), out)
		}
	case a.IsArray() && b.IsArray():
		as, bs := a.Array(), b.Array()
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		shifted := false
		for i := range max(len(as), len(bs)) {
			p := append(slices.Clip(path), strconv.Itoa(i))
			switch {
			case i >= len(as) || i >= len(bs), shifted:
				*out = append(*out, p)
			case key != "" && as[i].Get(gjson.Escape(key)).Raw != bs[i].Get(gjson.Escape(key)).Raw:
				*out = append(*out, p)
			case key == "" && len(as) != len(bs) && as[i].Raw != bs[i].Raw:
				shifted = true
				*out = append(*out, p)
			default:
				differences(as[i], bs[i], elem, "", p, out)
			}
		}
	case a.Exists() != b.Exists() || a.Raw != b.Raw:
		*out = append(*out, slices.Clone(path))
	}
}

// member is the Go type of the member k of an object of type t, as encoding/json names fields (embedded
// structs inline), and the field's patchMergeKey; nil where t is not known.
func member(t reflect.Type, k string) (reflect.Type, string) {
	if t == nil {
		return nil, ""
	}
	switch t.Kind() {
	case reflect.Map:
		return t.Elem(), ""
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
				if mt, key := member(f.Type, k); mt != nil {
					return mt, key
				}
				continue
			}
			if name == "" {
				name = f.Name
			}
			if name == k && f.IsExported() {
				return f.Type, f.Tag.Get("patchMergeKey")
			}
		}
	}
	return nil, ""
}

func collect(r gjson.Result, path []string, leaves *[]leaf) {
	n := 0
	if r.IsObject() || r.IsArray() {
		i := 0
		r.ForEach(func(k, v gjson.Result) bool {
			seg := k.String()
			if r.IsArray() {
				seg = strconv.Itoa(i)
			}
			i++
			n++
			collect(v, append(slices.Clip(path), seg), leaves)
			return true
		})
	}
	if n == 0 {
		*leaves = append(*leaves, leaf{at: slices.Clone(path), raw: r.Raw})
	}
}

// at is the value at segs in r; it does not exist where r has nothing. Keys are matched as decoded,
// the first of a duplicate.
func at(r gjson.Result, segs []string) gjson.Result {
	for _, s := range segs {
		if !r.IsObject() && !r.IsArray() {
			return gjson.Result{} // ForEach would visit a scalar itself
		}
		var next gjson.Result
		i := 0
		r.ForEach(func(k, v gjson.Result) bool {
			hit := k.String() == s
			if r.IsArray() {
				hit = strconv.Itoa(i) == s
			}
			i++
			if hit {
				next = v
			}
			return !hit
		})
		if !next.Exists() {
			return gjson.Result{}
		}
		r = next
	}
	return r
}

func pointer(segs []string) string {
	var b strings.Builder
	for _, s := range segs {
		b.WriteString("/" + strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1"))
	}
	return b.String()
}

func hasPrefix(a, prefix []string) bool {
	return len(a) >= len(prefix) && slices.Equal(a[:len(prefix)], prefix)
}

func compact(s string) string {
	var b bytes.Buffer
	if json.Compact(&b, []byte(s)) != nil {
		return s
	}
	return b.String()
}

func orMissing(r gjson.Result) string {
	if !r.Exists() {
		return "missing"
	}
	return r.Raw
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
