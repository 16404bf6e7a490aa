package patchtest_test

import (
	"strings"
	"testing"

	"gomodules.xyz/jsonpatch/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	sjson "sigs.k8s.io/json"

	"github.com/silogen/kaiwo-webhook/pkg/typedpatch/patchtest"
)

const job = `{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j","annotations":{"a/b":"\u003c"}},
 "spec":{"future":1.0e2,"template":{"spec":{"containers":[
  {"name":"a","image":"i","futureA":true},
  {"name":"b","image":"i","resources":{"limits":{"cpu":"1000m"}},"futureB":[1]}]}}}}`

// TestCheck: the oracle passes a right patch and catches each way a patch can be wrong.
func TestCheck(t *testing.T) {
	var j batchv1.Job
	if err := sjson.UnmarshalCaseSensitivePreserveInts([]byte(job), &j); err != nil {
		t.Fatal(err)
	}
	removeA := j.DeepCopy() // container a removed, b's image changed
	removeA.Spec.Template.Spec.Containers = []corev1.Container{removeA.Spec.Template.Spec.Containers[1]}
	removeA.Spec.Template.Spec.Containers[0].Image = "new"
	cpu := j.DeepCopy() // the same quantity, written otherwise
	cpu.Spec.Template.Spec.Containers[1].Resources.Limits["cpu"] = resource.MustParse("1")
	op := func(o, p string, v any) jsonpatch.Operation {
		return jsonpatch.Operation{Operation: o, Path: p, Value: v}
	}
	cases := []struct {
		name    string
		ops     []jsonpatch.Operation
		mutated *batchv1.Job
		want    string // "" for no error, else a part of it
	}{
		{"no change, no patch", nil, &j, ""},
		{"a right patch", []jsonpatch.Operation{op("remove", "/spec/template/spec/containers/0", nil),
			op("replace", "/spec/template/spec/containers/0/image", "new")}, removeA, ""},
		{"an equal quantity left as written", nil, cpu, ""},
		{"a change left out", []jsonpatch.Operation{op("remove", "/spec/template/spec/containers/0", nil)}, removeA, "decodes to something else"},
		{"a patch that does not apply", []jsonpatch.Operation{op("replace", "/spec/nothing/here", 1)}, &j, "does not apply"},
		{"a move", []jsonpatch.Operation{{Operation: "move", Path: "/a"}}, &j, "want add, remove or replace"},
		{"a container written again from the Go value", []jsonpatch.Operation{op("replace", "/spec/template/spec/containers/1/image", "new"),
			op("replace", "/spec/template/spec/containers/1/resources", map[string]any{"limits": map[string]any{"cpu": "1"}})}, newImage(&j), `"1000m"`},
		{"an unknown field dropped with its sibling's change", []jsonpatch.Operation{op("replace", "/spec/template/spec/containers/0", map[string]any{"name": "a", "image": "i"}),
			op("replace", "/spec/template/spec/containers/1/image", "new")}, newImage(&j), "futureA"},
		{"an unknown field under a removed element", []jsonpatch.Operation{op("remove", "/spec/template/spec/containers/1", nil)}, withOnlyA(&j), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := patchtest.Check([]byte(job), tc.ops, tc.mutated)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("want no error, got %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("want an error containing %q, got %v", tc.want, err)
			}
		})
	}
}

// withOnlyA is j with its first container alone.
func withOnlyA(j *batchv1.Job) *batchv1.Job {
	c := j.DeepCopy()
	c.Spec.Template.Spec.Containers = c.Spec.Template.Spec.Containers[:1]
	return c
}

// newImage is j with its second container's image changed.
func newImage(j *batchv1.Job) *batchv1.Job {
	c := j.DeepCopy()
	c.Spec.Template.Spec.Containers[1].Image = "new"
	return c
}

// TestCheckNotUTF8: raw that is not UTF-8 is still decoded and compared, but its bytes are not: the
// applier writes the invalid ones otherwise.
func TestCheckNotUTF8(t *testing.T) {
	raw := []byte("{\"apiVersion\":\"batch/v1\",\"kind\":\"Job\",\"spec\":{\"x\xff\":1,\"template\":{\"spec\":{\"containers\":[{\"name\":\"a\",\"image\":\"i\"}]}}}}")
	var j batchv1.Job
	if err := sjson.UnmarshalCaseSensitivePreserveInts(raw, &j); err != nil {
		t.Fatal(err)
	}
	m := j.DeepCopy()
	m.Spec.Template.Spec.Containers[0].Image = "new"
	right := []jsonpatch.Operation{{Operation: "replace", Path: "/spec/template/spec/containers/0/image", Value: "new"}}
	if err := patchtest.Check(raw, right, m); err != nil {
		t.Errorf("a right patch: %v", err)
	}
	if err := patchtest.Check(raw, nil, m); err == nil || !strings.Contains(err.Error(), "decodes to something else") {
		t.Errorf("a change left out: %v, want it caught", err)
	}
}
