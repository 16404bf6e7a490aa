package manifests_test

import (
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apiserver/pkg/admission"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions"
	"k8s.io/apiserver/pkg/cel/environment"
	"k8s.io/utils/ptr"

	"github.com/silogen/kaiwo-webhook/pkg/webhookrules"
)

// TestTemplatePathConditions: the match conditions a kind's template paths give (a list of templates, a
// map of them, the object itself) compile as the kube-apiserver compiles them, and find a GPU container in
// each place and nowhere else, so that the kinds to come can declare such paths.
func TestTemplatePathConditions(t *testing.T) {
	gpuTemplate := map[string]any{"spec": map[string]any{"containers": []any{
		map[string]any{"name": "c", "resources": map[string]any{"limits": map[string]any{"amd.com/gpu": "1"}}}}}}
	plain := map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "c"}}}}
	cases := map[string]struct {
		path      string
		gpu, none map[string]any
	}{
		"list": {"spec.replicatedJobs[].template.spec.template",
			map[string]any{"spec": map[string]any{"replicatedJobs": []any{
				map[string]any{"template": map[string]any{"spec": map[string]any{"template": plain}}},
				map[string]any{"template": map[string]any{"spec": map[string]any{"template": gpuTemplate}}}}}},
			map[string]any{"spec": map[string]any{"replicatedJobs": []any{map[string]any{"name": "no template"}}}}},
		"map": {"spec.pytorchReplicaSpecs{}.template",
			map[string]any{"spec": map[string]any{"pytorchReplicaSpecs": map[string]any{
				"Master": map[string]any{"template": plain}, "Worker": map[string]any{"template": gpuTemplate}}}},
			map[string]any{"spec": map[string]any{"pytorchReplicaSpecs": map[string]any{"Master": map[string]any{"replicas": 1}}}}},
		"the object": {"", gpuTemplate, plain},
	}
	compiler := plugincel.NewCompiler(celEnv)
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			expr, err := webhookrules.TemplatesGPU([]string{tc.path})
			if err != nil {
				t.Fatal(err)
			}
			res := compiler.CompileCELExpression(&matchconditions.MatchCondition{Name: "gpu", Expression: expr},
				plugincel.OptionalVariableDeclarations{HasAuthorizer: true}, environment.NewExpressions)
			if res.Error != nil {
				t.Fatalf("does not compile: %v\n%s", res.Error, expr)
			}
			for _, c := range []struct {
				obj  map[string]any
				want bool
			}{{tc.gpu, true}, {tc.none, false}} {
				obj := &unstructured.Unstructured{Object: c.obj}
				if got := evalCondition(t, expr, obj); got != c.want {
					t.Errorf("on %v: %v, want %v", c.obj, got, c.want)
				}
			}
		})
	}
}

// evalCondition runs expr as the one match condition of a webhook, on a CREATE of obj.
func evalCondition(t *testing.T, expr string, obj *unstructured.Unstructured) bool {
	t.Helper()
	obj.SetAPIVersion("example.com/v1")
	obj.SetKind("Thing")
	obj.SetName("x")
	obj.SetNamespace("ml")
	w := admissionregistrationv1.ValidatingWebhook{Name: "things.example.com",
		Rules: []admissionregistrationv1.RuleWithOperations{{Rule: admissionregistrationv1.Rule{
			APIGroups: []string{"example.com"}, APIVersions: []string{"v1"}, Resources: []string{"things"}}}},
		FailurePolicy:   ptr.To(admissionregistrationv1.Fail),
		MatchConditions: []admissionregistrationv1.MatchCondition{{Name: "gpu", Expression: expr}}}
	res := matchRequest(t, w, admission.Create, obj, nil)
	if res.Error != nil {
		t.Fatalf("evaluating: %v", res.Error)
	}
	return res.Matches
}
