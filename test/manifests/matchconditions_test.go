package manifests_test

import (
	"testing"

	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apiserver/pkg/admission"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions"
	"k8s.io/apiserver/pkg/cel/environment"
	"k8s.io/utils/ptr"

	"github.com/silogen/kaiwo-webhook/internal/testobj"
)

// The CEL environment of the kube-apiserver these tests are built against
// (k8s.io/apiserver, the same minor as the envtest kube-apiserver).
var celEnv = environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion())

// TestMatchConditionsCompile compiles every match condition as the
// kube-apiserver validates a new Mutating- or ValidatingWebhookConfiguration: the stateless
// strict compiler, the environment for new expressions, the authorizer
// variables declared, a bool result.
func TestMatchConditionsCompile(t *testing.T) {
	compiler := plugincel.NewCompiler(celEnv)
	for name, objs := range renders(t) {
		t.Run(name, func(t *testing.T) {
			m := into[admissionregistrationv1.MutatingWebhookConfiguration](t, find(t, objs, "MutatingWebhookConfiguration", ""))
			v := into[admissionregistrationv1.ValidatingWebhookConfiguration](t, find(t, objs, "ValidatingWebhookConfiguration", ""))
			for _, w := range append(v.Webhooks, mutatingAsValidating(m.Webhooks)...) {
				for _, c := range w.MatchConditions {
					for _, msg := range validation.IsQualifiedName(c.Name) {
						t.Errorf("%s: condition name %q: %s", w.Name, c.Name, msg)
					}
					res := compiler.CompileCELExpression(&matchconditions.MatchCondition{Name: c.Name, Expression: c.Expression},
						plugincel.OptionalVariableDeclarations{HasAuthorizer: true}, environment.NewExpressions)
					if res.Error != nil {
						t.Errorf("%s: condition %s does not compile: %v", w.Name, c.Name, res.Error)
					}
				}
			}
		})
	}
}

// TestMatchConditions evaluates each webhook's match conditions on sample
// objects, through the kube-apiserver's own matcher: typed objects for the
// built-in kinds (as the API server holds them) and unstructured ones for Ray
// (custom resources), plus the unstructured form of the built-ins.
func TestMatchConditions(t *testing.T) {
	const (
		ns       = "team-ml"
		gpus     = "kaiwo.silogen.ai/gpus"
		managed  = "kaiwo.silogen.ai/managed"
		amdGPU   = corev1.ResourceName("amd.com/gpu")
		nvidiaGP = corev1.ResourceName("nvidia.com/gpu")
	)
	job := func() *testobj.JobWrapper { return testobj.MakeJob("train", ns) }
	deployment := func() *testobj.DeploymentWrapper { return testobj.MakeDeployment("serve", ns) }
	rayJob := func() *testobj.RayJobWrapper { return testobj.MakeRayJob("finetune", ns, "workers") }
	rayService := func() *testobj.RayServiceWrapper { return testobj.MakeRayService("llm", ns, "workers") }
	withLimitOnly := func(j *testobj.JobWrapper, r corev1.ResourceName) runtime.Object {
		o := j.Obj()
		o.Spec.Template.Spec.Containers[0].Resources.Limits = corev1.ResourceList{r: resource.MustParse("1")}
		return o
	}
	withRequestOnly := func(d *testobj.DeploymentWrapper, r corev1.ResourceName) runtime.Object {
		o := d.Obj()
		o.Spec.Template.Spec.Containers[0].Resources.Requests = corev1.ResourceList{r: resource.MustParse("1")}
		return o
	}
	rayHeadGPU := func() runtime.Object {
		o := rayJob().Obj()
		testobj.Resources(&o.Spec.RayClusterSpec.HeadGroupSpec.Template, 0, amdGPU, "1")
		return o
	}
	raySubmitterGPU := func() runtime.Object {
		o := rayJob().Submitter().Obj()
		testobj.Resources(o.Spec.SubmitterPodTemplate, 0, nvidiaGP, "1")
		return o
	}
	rayServiceGPU := func() runtime.Object {
		o := rayService().Obj()
		testobj.Resources(&o.Spec.RayClusterSpec.WorkerGroupSpecs[0].Template, 0, amdGPU, "8")
		return o
	}
	rayServiceLabelled := func(v string) runtime.Object {
		o := rayService().Obj()
		o.Labels = map[string]string{managed: v}
		return o
	}
	initGPU := func() runtime.Object {
		o := job().InitContainer("warmup", false).Obj()
		o.Spec.Template.Spec.InitContainers[0].Resources.Limits = corev1.ResourceList{amdGPU: resource.MustParse("1")}
		return o
	}
	otherAnnotation := func() runtime.Object {
		return job().Annotate("example.com/kaiwo.silogen.ai/gpus", "1").Annotate("kaiwo.silogen.ai", "x").Obj()
	}

	draJob := func() runtime.Object {
		o := job().Obj()
		o.Spec.Template.Spec.ResourceClaims = []corev1.PodResourceClaim{{Name: "g", ResourceClaimTemplateName: ptr.To("gpus")}}
		o.Spec.Template.Spec.Containers[0].Resources.Claims = []corev1.ResourceClaim{{Name: "g"}}
		return o
	}
	cases := map[string]struct {
		webhook string
		obj     runtime.Object
		want    bool
	}{
		"annotated Job":                    {"jobs", job().Annotate(gpus, "4").Obj(), true},
		"plain Job":                        {"jobs", job().Obj(), false},
		"Job labelled managed":             {"jobs", job().Label(managed, "true").Obj(), true},
		"Job labelled managed=false":       {"jobs", job().Label(managed, "false").Obj(), false},
		"Job with a look-alike annotation": {"jobs", otherAnnotation(), false},
		"Job with other labels":            {"jobs", job().Label("app", "x").Annotate("note", "y").Obj(), false},
		"Job with a CPU request":           {"jobs", job().Resource(0, corev1.ResourceCPU, "2").Obj(), false},
		"GPU Job (amd, limit only)":        {"jobs", withLimitOnly(job(), amdGPU), true},
		"GPU Job (nvidia, limit only)":     {"jobs", withLimitOnly(job(), nvidiaGP), true},
		"GPU Job in an init container":     {"jobs", initGPU(), true},
		"Job with another vendor":          {"jobs", withLimitOnly(job(), "intel.com/gpu"), false},
		"GPU Job (MIG slices only)":        {"jobs", withLimitOnly(job(), "nvidia.com/mig-1g.10gb"), true},
		"GPU Job (time-sliced only)":       {"jobs", withLimitOnly(job(), "nvidia.com/gpu.shared"), true},
		"GPU Deployment (AMD partition)":   {"deployments", withRequestOnly(deployment(), "amd.com/gpu-partition"), true},
		"Job with an NVIDIA NIC":           {"jobs", withLimitOnly(job(), "nvidia.com/rdma_shared_device_a"), false},
		"Job with a DRA claim only":        {"jobs", draJob(), true},
		"GPU Deployment":                   {"deployments", deployment().Resource(0, amdGPU, "1").Obj(), true},
		"GPU Deployment (request only)":    {"deployments", withRequestOnly(deployment(), nvidiaGP), true},
		"plain Deployment":                 {"deployments", deployment().Obj(), false},
		"annotated Deployment":             {"deployments", deployment().Annotate("kaiwo.silogen.ai/queue", "q").Obj(), true},
		"Deployment labelled managed":      {"deployments", deployment().Label(managed, "true").Obj(), true},
		"RayJob with a GPU worker":         {"rayjobs", rayJob().WorkerResource(0, amdGPU, "8").Obj(), true},
		"RayJob with a GPU head":           {"rayjobs", rayHeadGPU(), true},
		"RayJob with a GPU submitter":      {"rayjobs", raySubmitterGPU(), true},
		"plain RayJob":                     {"rayjobs", rayJob().Submitter().Obj(), false},
		"RayJob on an existing cluster":    {"rayjobs", rayJob().NoCluster().ClusterSelector("ray.io/cluster", "c").Obj(), false},
		"annotated RayJob":                 {"rayjobs", rayJob().Annotate(gpus, "16").Obj(), true},
		"plain RayService":                 {"rayservices", rayService().Obj(), false},
		"RayService with a GPU worker":     {"rayservices", rayServiceGPU(), true},
		"annotated RayService":             {"rayservices", rayService().Annotate(gpus, "8").Obj(), true},
		"RayService labelled managed":      {"rayservices", rayServiceLabelled("true"), true},
		"RayService labelled other":        {"rayservices", rayServiceLabelled("yes"), false},
	}
	// Objects without the fields the conditions walk must not make them error
	// (an error denies the request under failurePolicy Fail).
	sparse := map[string]struct {
		webhook string
		obj     map[string]any
		want    bool
	}{
		"Job without spec": {"jobs", map[string]any{"apiVersion": "batch/v1", "kind": "Job",
			"metadata": map[string]any{"name": "j", "namespace": ns}}, false},
		"Job without pod spec": {"jobs", map[string]any{"apiVersion": "batch/v1", "kind": "Job",
			"metadata": map[string]any{"name": "j", "namespace": ns}, "spec": map[string]any{"template": map[string]any{}}}, false},
		"container without resources": {"deployments", map[string]any{"apiVersion": "apps/v1", "kind": "Deployment",
			"metadata": map[string]any{"name": "d", "namespace": ns},
			"spec":     map[string]any{"template": map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "c"}}}}}}, false},
		"RayJob without spec": {"rayjobs", map[string]any{"apiVersion": "ray.io/v1", "kind": "RayJob",
			"metadata": map[string]any{"name": "r", "namespace": ns}}, false},
		"RayJob worker group without template": {"rayjobs", map[string]any{"apiVersion": "ray.io/v1", "kind": "RayJob",
			"metadata": map[string]any{"name": "r", "namespace": ns},
			"spec": map[string]any{"rayClusterSpec": map[string]any{
				"headGroupSpec": map[string]any{},
				"workerGroupSpecs": []any{map[string]any{"groupName": "w"}, map[string]any{"template": map[string]any{"spec": map[string]any{"containers": []any{
					map[string]any{"name": "w", "resources": map[string]any{"limits": map[string]any{"amd.com/gpu": "1"}}}}}}}},
			}}}, true},
		"RayService without cluster config": {"rayservices", map[string]any{"apiVersion": "ray.io/v1", "kind": "RayService",
			"metadata": map[string]any{"name": "r", "namespace": ns}, "spec": map[string]any{}}, false},
		"CronJob without job template": {"cronjobs", map[string]any{"apiVersion": "batch/v1", "kind": "CronJob",
			"metadata": map[string]any{"name": "c", "namespace": ns}, "spec": map[string]any{"schedule": "@daily"}}, false},
		"GPU CronJob": {"cronjobs", map[string]any{"apiVersion": "batch/v1", "kind": "CronJob",
			"metadata": map[string]any{"name": "c", "namespace": ns}, "spec": map[string]any{"jobTemplate": map[string]any{"spec": map[string]any{
				"template": map[string]any{"spec": map[string]any{"initContainers": []any{
					map[string]any{"name": "w", "resources": map[string]any{"limits": map[string]any{"nvidia.com/gpu": "1"}}}}}}}}}}, true},
		"plain CronJob": {"cronjobs", map[string]any{"apiVersion": "batch/v1", "kind": "CronJob",
			"metadata": map[string]any{"name": "c", "namespace": ns}, "spec": map[string]any{"jobTemplate": map[string]any{"spec": map[string]any{
				"template": map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "w"}}}}}}}}, false},
		"GPU StatefulSet": {"statefulsets", map[string]any{"apiVersion": "apps/v1", "kind": "StatefulSet",
			"metadata": map[string]any{"name": "s", "namespace": ns}, "spec": map[string]any{"template": map[string]any{"spec": map[string]any{
				"containers": []any{map[string]any{"name": "w", "resources": map[string]any{"requests": map[string]any{"amd.com/gpu": "1"}}}}}}}}, true},
		"annotated StatefulSet": {"statefulsets", map[string]any{"apiVersion": "apps/v1", "kind": "StatefulSet",
			"metadata": map[string]any{"name": "s", "namespace": ns, "annotations": map[string]any{"kaiwo.silogen.ai/gpus": "1"}}}, true},
		"plain StatefulSet": {"statefulsets", map[string]any{"apiVersion": "apps/v1", "kind": "StatefulSet",
			"metadata": map[string]any{"name": "s", "namespace": ns}, "spec": map[string]any{"template": map[string]any{}}}, false},
		"Pod without spec": {"pods", map[string]any{"apiVersion": "v1", "kind": "Pod",
			"metadata": map[string]any{"name": "p", "namespace": ns}}, false},
		"plain Pod": {"pods", map[string]any{"apiVersion": "v1", "kind": "Pod",
			"metadata": map[string]any{"name": "p", "namespace": ns}, "spec": map[string]any{"containers": []any{map[string]any{"name": "w"}}}}, false},
		"bare GPU Pod": {"pods", map[string]any{"apiVersion": "v1", "kind": "Pod",
			"metadata": map[string]any{"name": "p", "namespace": ns}, "spec": map[string]any{"containers": []any{
				map[string]any{"name": "w", "resources": map[string]any{"limits": map[string]any{"amd.com/gpu": "1"}}}}}}, true},
		"annotated Pod": {"pods", map[string]any{"apiVersion": "v1", "kind": "Pod",
			"metadata": map[string]any{"name": "p", "namespace": ns, "annotations": map[string]any{"kaiwo.silogen.ai/gpus": "1"}}}, true},
	}

	for render, objs := range renders(t) {
		m := into[admissionregistrationv1.MutatingWebhookConfiguration](t, find(t, objs, "MutatingWebhookConfiguration", ""))
		webhooks := map[string]admissionregistrationv1.MutatingWebhook{}
		for _, w := range m.Webhooks {
			webhooks[w.Name] = w
		}
		check := func(t *testing.T, webhook string, obj runtime.Object, want bool) {
			t.Helper()
			w, ok := webhooks[webhook+".kaiwo.silogen.ai"]
			if !ok {
				t.Fatalf("no webhook %s.kaiwo.silogen.ai", webhook)
			}
			res := match(t, w, obj)
			if res.Error != nil {
				t.Fatalf("evaluation error (denies the request under Fail): %v", res.Error)
			}
			if res.Matches != want {
				t.Errorf("matches = %v, want %v (failed condition %q)", res.Matches, want, res.FailedConditionName)
			}
		}
		t.Run(render, func(t *testing.T) {
			for name, tc := range cases {
				t.Run(name, func(t *testing.T) {
					switch tc.obj.(type) {
					case *rayv1.RayJob, *rayv1.RayService:
						check(t, tc.webhook, toUnstructured(t, tc.obj), tc.want)
					default:
						check(t, tc.webhook, tc.obj, tc.want)
						t.Run("unstructured", func(t *testing.T) { check(t, tc.webhook, toUnstructured(t, tc.obj), tc.want) })
					}
				})
			}
			for name, tc := range sparse {
				t.Run(name, func(t *testing.T) { check(t, tc.webhook, &unstructured.Unstructured{Object: tc.obj}, tc.want) })
			}
		})
	}
}

// match runs the webhook's match conditions on a CREATE of obj the way the
// kube-apiserver's webhook dispatcher does.
func match(t *testing.T, w admissionregistrationv1.MutatingWebhook, obj runtime.Object) matchconditions.MatchResult {
	t.Helper()
	return matchRequest(t, mutatingAsValidating([]admissionregistrationv1.MutatingWebhook{w})[0], admission.Create, obj, nil)
}

func toUnstructured(t *testing.T, obj runtime.Object) *unstructured.Unstructured {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: m}
}
