package typedpatch

import (
	"errors"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sjson "sigs.k8s.io/json"

	"github.com/silogen/kaiwo-webhook/pkg/typedpatch/patchtest"
)

// Extra is a struct a future CRD type embeds by pointer: encoding/json writes its fields inline when
// the pointer is set, and nothing when it is nil.
type Extra struct {
	Mode  string   `json:"mode,omitempty"`
	Hosts []string `json:"hosts,omitempty"`
}

type withEmbeddedPointer struct {
	metav1.TypeMeta `json:",inline"`
	*Extra
	Spec struct {
		Image string `json:"image"`
	} `json:"spec"`
}

type named struct {
	Name string `json:"name,omitempty"`
}

// withShadowedName writes "name" twice: encoding/json writes the outer one only.
type withShadowedName struct {
	named
	Name  string `json:"name"`
	Image string `json:"image"`
}

// TestEmbeddedPointerStruct: a type that embeds a struct pointer is sent to the JSON diff, and its
// patch is right whether the pointer is set, changed or cleared, with raw's unknown field kept.
func TestEmbeddedPointerStruct(t *testing.T) {
	if _, err := typedDiff(&withEmbeddedPointer{}, &withEmbeddedPointer{}); !errors.Is(err, errNoTypedDiff) {
		t.Fatalf("typedDiff of a type with an embedded struct pointer: %v, want errNoTypedDiff", err)
	}
	cases := map[string]struct {
		raw    string
		change func(*withEmbeddedPointer)
	}{
		"set":           {`{"kind":"K","spec":{"image":"a"},"future":1}`, func(o *withEmbeddedPointer) { o.Extra = &Extra{Mode: "fast", Hosts: []string{"h"}} }},
		"changed":       {`{"kind":"K","mode":"slow","hosts":["a","b"],"spec":{"image":"a"},"future":1}`, func(o *withEmbeddedPointer) { o.Mode, o.Hosts = "fast", o.Hosts[:1] }},
		"cleared":       {`{"kind":"K","mode":"slow","spec":{"image":"a"},"future":1}`, func(o *withEmbeddedPointer) { o.Extra = nil }},
		"beside it":     {`{"kind":"K","mode":"slow","spec":{"image":"a"},"future":1}`, func(o *withEmbeddedPointer) { o.Spec.Image = "b" }},
		"left as it is": {`{"kind":"K","mode":"slow","spec":{"image":"a"}}`, func(*withEmbeddedPointer) {}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var original, mutated withEmbeddedPointer
			if err := sjson.UnmarshalCaseSensitivePreserveInts([]byte(tc.raw), &original); err != nil {
				t.Fatal(err)
			}
			if err := sjson.UnmarshalCaseSensitivePreserveInts([]byte(tc.raw), &mutated); err != nil {
				t.Fatal(err)
			}
			tc.change(&mutated)
			ops, err := Diff([]byte(tc.raw), &original, &mutated)
			if err != nil {
				t.Fatal(err)
			}
			if err := patchtest.Check([]byte(tc.raw), ops, &mutated); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestShadowedName: a type with two fields under one JSON name is sent to the JSON diff, which writes
// the one encoding/json writes.
func TestShadowedName(t *testing.T) {
	if _, err := typedDiff(&withShadowedName{}, &withShadowedName{}); !errors.Is(err, errNoTypedDiff) {
		t.Fatalf("typedDiff of a type with a shadowed field: %v, want errNoTypedDiff", err)
	}
	raw := []byte(`{"name":"a","image":"i"}`)
	var original, mutated withShadowedName
	if err := sjson.UnmarshalCaseSensitivePreserveInts(raw, &original); err != nil {
		t.Fatal(err)
	}
	mutated = original
	mutated.Name = "b"
	ops, err := Diff(raw, &original, &mutated)
	if err != nil {
		t.Fatal(err)
	}
	if err := patchtest.Check(raw, ops, &mutated); err != nil {
		t.Error(err)
	}
	if len(ops) != 1 {
		t.Errorf("patch %+v, want one replace of /name", ops)
	}
}
