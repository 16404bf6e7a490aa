package mutate

import (
	"encoding/json"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// TestMergePodTemplatePatchAsKubectl: the admin patch gives what a strategic merge of the template's JSON gives,
// as kubectl patch computes it, for patches of one part, of both, with directives and with deletions.
func TestMergePodTemplatePatchAsKubectl(t *testing.T) {
	tmpl := `{"metadata":{"labels":{"app":"a"},"annotations":{"x":"1"}},"spec":{
		"containers":[{"name":"main","image":"i","env":[{"name":"A","value":"1"}],"resources":{"limits":{"cpu":"2"}}},{"name":"side","image":"s"}],
		"tolerations":[{"key":"k","operator":"Exists"}],"nodeSelector":{"pool":"a"},"terminationGracePeriodSeconds":10}}`
	patches := map[string]string{
		"metadata only":        `{"metadata":{"annotations":{"team":"ml"}}}`,
		"both parts":           `{"metadata":{"labels":{"app":null}},"spec":{"containers":[{"name":"main","env":[{"name":"B","value":"2"}]}],"priorityClassName":"p"}}`,
		"numbers":              `{"spec":{"terminationGracePeriodSeconds":30,"containers":[{"name":"main","resources":{"limits":{"cpu":4,"memory":"1Gi"}}}]}}`,
		"list replaced":        `{"spec":{"tolerations":[{"key":"t","operator":"Exists","effect":"NoSchedule"}]}}`,
		"item deleted":         `{"spec":{"containers":[{"name":"side","$patch":"delete"}]}}`,
		"spec replaced":        `{"spec":{"$patch":"replace","containers":[{"name":"only","image":"o"}]}}`,
		"top-level directive":  `{"$patch":"replace","spec":{"containers":[{"name":"only","image":"o"}]}}`,
		"element order":        `{"spec":{"$setElementOrder/containers":[{"name":"side"},{"name":"main"}],"containers":[{"name":"main","image":"j"}]}}`,
		"metadata deleted":     `{"metadata":null}`,
		"no-op":                `{"metadata":{"labels":{"app":"a"}}}`,
		"node selector delete": `{"spec":{"nodeSelector":{"pool":null,"zone":"z"}}}`,
	}
	for name, patch := range patches {
		t.Run(name, func(t *testing.T) {
			var spec corev1.PodTemplateSpec
			if err := json.Unmarshal([]byte(tmpl), &spec); err != nil {
				t.Fatal(err)
			}
			before := spec.DeepCopy()
			orig, _ := json.Marshal(&spec)
			want := corev1.PodTemplateSpec{}
			out, err := strategicpatch.StrategicMergePatch(orig, []byte(patch), corev1.PodTemplateSpec{})
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(out, &want); err != nil {
				t.Fatal(err)
			}
			changed, ferr := mergePodTemplatePatch(template{path: field.NewPath("spec", "template"), spec: &spec}, []byte(patch), "p")
			if ferr != nil {
				t.Fatal(ferr)
			}
			if !apiequality.Semantic.DeepEqual(spec, want) {
				got, _ := json.Marshal(&spec)
				w, _ := json.Marshal(&want)
				t.Errorf("got\n%s\nwant\n%s", got, w)
			}
			if changed != !apiequality.Semantic.DeepEqual(before, &want) {
				t.Errorf("reported changed=%v", changed)
			}
		})
	}
}
