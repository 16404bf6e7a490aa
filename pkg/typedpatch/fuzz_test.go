package typedpatch_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	"github.com/tidwall/gjson"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	sjson "sigs.k8s.io/json"

	"github.com/silogen/kaiwo-webhook/pkg/typedpatch"
	"github.com/silogen/kaiwo-webhook/pkg/typedpatch/patchtest"
)

// fuzzKinds are the Go types FuzzDiff changes, picked by its kind argument.
var fuzzKinds = []func() any{
	func() any { return new(batchv1.Job) },
	func() any { return new(appsv1.Deployment) },
	func() any { return new(rayv1.RayJob) },
	func() any { return new(rayv1.RayService) },
}

// FuzzDiff starts from an object's JSON, formatted as an API server or kubectl could send it (see
// apiServerCould and relayout), makes random changes to its decoded Go value (randMutator: seed and
// changes drive them), and checks Diff's patch with the independent oracle patchtest.Check: applied to
// raw it decodes to the changed value, and every leaf of raw the change does not touch survives byte
// for byte. kind picks the Go type (fuzzKinds). The seed corpus is testdata/fuzz/FuzzDiff.
func FuzzDiff(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw []byte, kind uint8, seed int64, changes uint8, layout uint8) {
		raw = relayout(raw, layout)
		if !apiServerCould(raw) {
			return
		}
		newObj := fuzzKinds[int(kind)%len(fuzzKinds)]
		original, mutated := newObj(), newObj()
		if sjson.UnmarshalCaseSensitivePreserveInts(raw, original) != nil {
			return // only what the decoder refuses ends the check here
		}
		if err := sjson.UnmarshalCaseSensitivePreserveInts(raw, mutated); err != nil {
			t.Fatalf("the second decode fails: %v", err)
		}
		newRandMutator(seed).mutate(mutated, 1+int(changes%8))
		ops, err := typedpatch.Diff(raw, original, mutated)
		if err != nil {
			t.Fatalf("Diff: %v\nraw: %s", err, raw)
		}
		if err := patchtest.Check(raw, ops, mutated); err != nil {
			t.Fatalf("%v\nraw: %s", err, raw)
		}
		enc, err := typedpatch.Encode(ops)
		want, _ := json.Marshal(ops)
		if err != nil || !bytes.Equal(enc, want) {
			t.Fatalf("Encode gives %s (%v), encoding/json %s", enc, err, want)
		}
	})
}

// apiServerCould reports whether raw is JSON an API server could send for an object, or kubectl
// could: one JSON object, valid UTF-8, no key given twice in an object (the API server re-encodes
// what it stores, from Go values or from maps). Layout, key order and the spelling of strings and
// numbers are free.
func apiServerCould(raw []byte) bool {
	if !json.Valid(raw) || !utf8.Valid(raw) {
		return false
	}
	doc := gjson.ParseBytes(raw)
	return doc.IsObject() && noDuplicateKeys(doc)
}

func noDuplicateKeys(r gjson.Result) bool {
	if !r.IsObject() && !r.IsArray() {
		return true // ForEach would visit a scalar itself
	}
	ok := true
	var seen map[string]bool
	if r.IsObject() {
		seen = map[string]bool{}
	}
	r.ForEach(func(k, v gjson.Result) bool {
		if seen != nil {
			if seen[k.String()] {
				ok = false
				return false
			}
			seen[k.String()] = true
		}
		ok = noDuplicateKeys(v)
		return ok
	})
	return ok
}

// relayout writes raw's objects and lists again, scalars as they are: layout%4 is 0 for raw as it is,
// 1 for keys sorted (as the API server writes a custom resource), 2 for keys in reverse order, 3 for
// indented with spaces and tabs. Raw that is not valid JSON is returned as it is.
func relayout(raw []byte, layout uint8) []byte {
	if layout%4 == 0 || !json.Valid(raw) {
		return raw
	}
	var b bytes.Buffer
	write(&b, gjson.ParseBytes(raw), layout%4, 0)
	return b.Bytes()
}

func write(b *bytes.Buffer, r gjson.Result, layout uint8, depth int) {
	if !r.IsObject() && !r.IsArray() {
		b.WriteString(r.Raw)
		return
	}
	type member struct{ key, sortKey string }
	var keys []member
	var vals []gjson.Result
	r.ForEach(func(k, v gjson.Result) bool {
		keys = append(keys, member{k.Raw, k.String()})
		vals = append(vals, v)
		return true
	})
	order := make([]int, len(vals))
	for i := range order {
		order[i] = i
	}
	if r.IsObject() {
		switch layout {
		case 1:
			slices.SortStableFunc(order, func(i, j int) int { return strings.Compare(keys[i].sortKey, keys[j].sortKey) })
		case 2:
			slices.Reverse(order)
		}
	}
	open, end := "[", "]"
	if r.IsObject() {
		open, end = "{", "}"
	}
	b.WriteString(open)
	indent := "\n" + strings.Repeat(" \t", depth+1)
	for n, i := range order {
		if n > 0 {
			b.WriteString(",")
		}
		if layout == 3 {
			b.WriteString(indent)
		}
		if r.IsObject() {
			b.WriteString(keys[i].key)
			b.WriteString(":")
			if layout == 3 {
				b.WriteString(" ")
			}
		}
		write(b, vals[i], layout, depth+1)
	}
	if layout == 3 && len(order) > 0 {
		b.WriteString("\n" + strings.Repeat(" \t", depth))
	}
	b.WriteString(end)
}

// TestRelayout: the layouts keep the document (the fuzz targets' premise).
func TestRelayout(t *testing.T) {
	raw := []byte(`{"b":{"y":[1,{"q":"\u003c","p":1.0e2}],"x":null},"a":[],"c":{}}`)
	for layout := range uint8(4) {
		got := relayout(raw, layout)
		var a, b any
		if json.Unmarshal(raw, &a) != nil || json.Unmarshal(got, &b) != nil || !reflect.DeepEqual(a, b) {
			t.Errorf("layout %d: %s", layout, got)
		}
		if !bytes.Contains(got, []byte(`"\u003c"`)) || !bytes.Contains(got, []byte(`1.0e2`)) {
			t.Errorf("layout %d rewrites scalars: %s", layout, got)
		}
	}
	if got := string(relayout(raw, 1)); !strings.HasPrefix(got, `{"a":[],"b":{"x":null,"y":[1,{"p":1.0e2,"q":"\u003c"}]},"c":{}}`) {
		t.Errorf("sorted: %s", got)
	}
}
