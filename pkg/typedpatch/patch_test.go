package typedpatch

import (
	"encoding/json"
	"reflect"
	"testing"

	"gomodules.xyz/jsonpatch/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	sjson "sigs.k8s.io/json"
)

// TestPatchShapes: for each change, the patch applied to the original's JSON gives the mutated object's
// JSON, whatever the shape: map keys that need escaping, lists that grow and shrink, a nil map made
// empty, a pointer cleared, quantities written differently but equal.
func TestPatchShapes(t *testing.T) {
	base := func() *batchv1.Job {
		return &batchv1.Job{
			TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
			ObjectMeta: metav1.ObjectMeta{Name: "j", Annotations: map[string]string{"a/b~c": "1", "keep": "k"}},
			Spec: batchv1.JobSpec{
				Parallelism: ptr.To[int32](2),
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "a", Env: []corev1.EnvVar{{Name: "X", Value: "1"}, {Name: "Y", Value: "2"}, {Name: "Z"}},
						Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{"cpu": resource.MustParse("1000m")}}}},
				}},
			},
		}
	}
	cases := map[string]struct {
		change func(*batchv1.Job)
		ops    int
	}{
		"escaped keys": {func(j *batchv1.Job) { j.Annotations["a/b~c"] = "2"; j.Annotations["x~/y"] = "3" }, 2},
		"key removed":  {func(j *batchv1.Job) { delete(j.Annotations, "keep") }, 1},
		"list grows": {func(j *batchv1.Job) {
			c := &j.Spec.Template.Spec.Containers[0]
			c.Env = append(c.Env, corev1.EnvVar{Name: "W"})
		}, 1},
		"list shrinks":    {func(j *batchv1.Job) { c := &j.Spec.Template.Spec.Containers[0]; c.Env = c.Env[:1] }, 2},
		"nil map to one":  {func(j *batchv1.Job) { j.Labels = map[string]string{"l": "v"} }, 1},
		"pointer cleared": {func(j *batchv1.Job) { j.Spec.Parallelism = nil }, 1},
		"same quantity": {func(j *batchv1.Job) {
			j.Spec.Template.Spec.Containers[0].Resources.Limits["cpu"] = resource.MustParse("1")
		}, 0},
		"new struct": {func(j *batchv1.Job) {
			j.Spec.Template.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](7)}
		}, 1},
		"nothing": {func(*batchv1.Job) {}, 0},
		"keyed removal": {func(j *batchv1.Job) {
			c := &j.Spec.Template.Spec.Containers[0]
			c.Env = []corev1.EnvVar{{Name: "Y", Value: "3"}} // X and Z removed, Y changed
		}, 3},
		"keyed reorder": {func(j *batchv1.Job) {
			c := &j.Spec.Template.Spec.Containers[0]
			c.Env = []corev1.EnvVar{c.Env[2], c.Env[0]} // reordered: by position
		}, 5},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			a := base()
			b := a.DeepCopy()
			tc.change(b)
			raw, _ := json.Marshal(a)
			ops, err := Diff(raw, a, b)
			if err != nil {
				t.Fatal(err)
			}
			if len(ops) != tc.ops {
				t.Errorf("%d operations, want %d: %+v", len(ops), tc.ops, ops)
			}
			got, err := Apply(raw, ops)
			if err != nil {
				t.Fatalf("patch %+v does not apply: %v", ops, err)
			}
			want, _ := json.Marshal(b)
			if !sameDoc(t, got, want) {
				t.Errorf("patched:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestPatchOverNullElement: where raw holds null and the Go type a container, the operation sets the whole
// container in place rather than inserting beside it.
func TestPatchOverNullElement(t *testing.T) {
	got, ops := patchJob(t, `{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j"},"spec":{"template":{"spec":{"containers":[{"name":"a"}],"tolerations":[null]}}}}`,
		func(b *batchv1.Job) { b.Spec.Template.Spec.Tolerations[0].Key = "k" })
	if !sameDoc(t, got, []byte(`{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j"},"spec":{"template":{"spec":{"containers":[{"name":"a"}],"tolerations":[{"key":"k"}]}}}}`)) {
		t.Errorf("patched: %s (ops %+v)", got, ops)
	}
}

// patchJob decodes raw, changes a copy with change, and returns raw with the patch applied, and the patch.
func patchJob(t *testing.T, raw string, change func(*batchv1.Job)) ([]byte, []jsonpatch.Operation) {
	t.Helper()
	a := decodeJob(t, []byte(raw))
	b := a.DeepCopy()
	change(b)
	ops, err := Diff([]byte(raw), a, b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Apply([]byte(raw), ops)
	if err != nil {
		t.Fatalf("patch %+v does not apply: %v", ops, err)
	}
	return got, ops
}

// decodeJob decodes raw as the API server does: case-sensitive, integers exact.
func decodeJob(t *testing.T, raw []byte) *batchv1.Job {
	t.Helper()
	var j batchv1.Job
	if err := sjson.UnmarshalCaseSensitivePreserveInts(raw, &j); err != nil {
		t.Fatal(err)
	}
	return &j
}

// sameDoc reports whether a and b are the same JSON document, whatever their layout and key order.
func sameDoc(t *testing.T, a, b []byte) bool {
	t.Helper()
	return reflect.DeepEqual(decodeAny(t, a), decodeAny(t, b))
}

func decodeAny(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestPatchKeepsExactNumbers: a value that float64 rounds to raw's is still replaced.
func TestPatchKeepsExactNumbers(t *testing.T) {
	got, ops := patchJob(t, `{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j"},"spec":{"template":{"spec":{"activeDeadlineSeconds":9007199254740992,"containers":[{"name":"c","image":"i"}]}}}}`,
		func(b *batchv1.Job) { b.Spec.Template.Spec.ActiveDeadlineSeconds = ptr.To[int64](9007199254740993) })
	if v := *decodeJob(t, got).Spec.Template.Spec.ActiveDeadlineSeconds; v != 9007199254740993 {
		t.Errorf("activeDeadlineSeconds = %d after patch %+v", v, ops)
	}
}

// TestPatchRemovalKeepsUnknownFields: where the admin's patch deletes a container from the middle, what
// raw holds beyond the Go types (a newer API's field) stays with its own container, and the one deleted
// takes its fields with it.
func TestPatchRemovalKeepsUnknownFields(t *testing.T) {
	got, ops := patchJob(t, `{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j"},"spec":{"template":{"spec":{"containers":[
		{"name":"debug","image":"d","futureField":{"x":1}},
		{"name":"main","image":"m","futureField":{"x":2}},
		{"name":"side","image":"s"}]}}}}`, func(b *batchv1.Job) {
		cs := b.Spec.Template.Spec.Containers
		b.Spec.Template.Spec.Containers = []corev1.Container{cs[1], cs[2], {Name: "new", Image: "n"}}
		b.Spec.Template.Spec.Containers[0].Image = "m2"
	})
	want := `{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j"},"spec":{"template":{"spec":{"containers":[
		{"name":"main","image":"m2","futureField":{"x":2}},
		{"name":"side","image":"s"},
		{"name":"new","image":"n","resources":{}}]}}}}`
	if !sameDoc(t, got, []byte(want)) {
		t.Errorf("patched:\n%s\nwant:\n%s\nops: %+v", got, want, ops)
	}
}

// TestPatchRemovalLiftsFromTheMovedElement: after a removal, an element that raw writes without a field
// the Go type has (resources) gets that field from its own mutated value, not from the one now at its
// old index.
func TestPatchRemovalLiftsFromTheMovedElement(t *testing.T) {
	got, ops := patchJob(t, `{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j"},"spec":{"template":{"spec":{"containers":[
		{"name":"debug","image":"d"},
		{"name":"main","image":"m","futureField":1}]}}}}`, func(b *batchv1.Job) {
		main := b.Spec.Template.Spec.Containers[1]
		main.Resources.Limits = corev1.ResourceList{"cpu": resource.MustParse("2")}
		b.Spec.Template.Spec.Containers = []corev1.Container{main}
	})
	want := `{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j"},"spec":{"template":{"spec":{"containers":[
		{"name":"main","image":"m","futureField":1,"resources":{"limits":{"cpu":"2"}}}]}}}}`
	if !sameDoc(t, got, []byte(want)) {
		t.Errorf("patched:\n%s\nwant:\n%s\nops: %+v", got, want, ops)
	}
}

// TestJSONDiffShrinksFromTheEnd: the fallback's patch removes the elements of a list that lost several
// from the last one down, so it applies.
func TestJSONDiffShrinksFromTheEnd(t *testing.T) {
	raw := []byte(`{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j"},"spec":{"template":{"spec":{"containers":[{"name":"a","image":"i","env":[{"name":"X"},{"name":"Y"},{"name":"Z"},{"name":"W"}]}]}}}}`)
	a := decodeJob(t, raw)
	b := a.DeepCopy()
	b.Spec.Template.Spec.Containers[0].Env = b.Spec.Template.Spec.Containers[0].Env[:1]
	ops, err := jsonDiff(raw, a, b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Apply(raw, ops)
	if err != nil {
		t.Fatalf("patch %+v does not apply: %v", ops, err)
	}
	want := `{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j"},"spec":{"template":{"spec":{"containers":[{"name":"a","image":"i","env":[{"name":"X"}]}]}}}}`
	if !sameDoc(t, got, []byte(want)) {
		t.Errorf("patched:\n%s\nwant:\n%s", got, want)
	}
}

// TestEncodeAsEncodingJSON: no patch and an empty one encode as encoding/json writes them.
func TestEncodeAsEncodingJSON(t *testing.T) {
	for _, ops := range [][]jsonpatch.Operation{nil, {}, {{Operation: "remove", Path: "/a~1<b>"}, {Operation: "add", Path: "/c"}}} {
		got, err := Encode(ops)
		want, _ := json.Marshal(ops)
		if err != nil || string(got) != string(want) {
			t.Errorf("Encode(%#v) = %s, %v; encoding/json writes %s", ops, got, err, want)
		}
	}
}
