package manifests_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/admission"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/cel/environment"
	"k8s.io/utils/ptr"

	"github.com/silogen/kaiwo-webhook/internal/testobj"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
)

const workloadValidatePath = "/validate"

// validatingWant is the contract of each workload validating webhook, after the KaiwoPolicy one, from the
// registry serve is given: CREATE and UPDATE of each handled kind, UPDATE of the scale subresource of those
// that have one, and each unhandled GPU-capable kind (CREATE only for those declared so; the kinds a handled
// workload's controller creates are sent on every UPDATE).
func validatingWant() []webhookWant {
	kinds := mutate.Builtin()
	var out, scaled []webhookWant
	for _, k := range kinds.Kinds() {
		w := webhookWant{k.Resource + ".validate.kaiwo.silogen.ai", k.GVK.Group, k.GVK.Version, k.Resource, createUpdate, withOwners(k, "kaiwo-managed-gpu-or-queued")}
		if len(k.PartOf) > 0 { // a part's controller's CREATE is not sent
			w.conditions = append(w.conditions, "not-a-part-from-a-controller-or-update")
		}
		out = append(out, w)
		if k.Scale {
			scaled = append(scaled, webhookWant{k.Resource + "-scale.validate.kaiwo.silogen.ai", k.GVK.Group, k.GVK.Version, k.Resource + "/scale",
				[]admissionregistrationv1.OperationType{admissionregistrationv1.Update}, []string{"scale-up"}})
		}
	}
	out = append(out, scaled...)
	for _, u := range kinds.Unhandled() {
		w := webhookWant{u.Resource + ".validate.kaiwo.silogen.ai", u.GVK.Group, u.GVK.Version, u.Resource, createUpdate, []string{"gpu", "not-from-a-controller"}}
		if u.Controlled {
			w.conditions[1] = "not-from-a-controller-or-update"
		}
		out = append(out, w)
	}
	return out
}

var createUpdate = []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}

// checkWorkloadValidators checks the validating webhooks after the KaiwoPolicy one: the server's
// /validate path, the mutating webhooks' namespaceSelector, Fail, and the named match conditions
// (evaluated in TestValidatingMatchConditions).
func checkWorkloadValidators(t *testing.T, got []admissionregistrationv1.ValidatingWebhook) {
	t.Helper()
	validatingWant := validatingWant()
	if len(got) != 1+len(validatingWant) {
		t.Fatalf("%d validating webhooks, want %d", len(got), 1+len(validatingWant))
	}
	for i, w := range validatingWant {
		g := got[1+i]
		var names []string
		for _, c := range g.MatchConditions {
			names = append(names, c.Name)
		}
		if diff := cmp.Diff(w.conditions, names); diff != "" {
			t.Errorf("%s: match conditions (-want,+got):\n%s", w.name, diff)
		}
		g.MatchConditions = nil
		want := w.webhook(workloadValidatePath)
		if diff := cmp.Diff(want, g); diff != "" {
			t.Errorf("validating webhook %s (-want,+got):\n%s", w.name, diff)
		}
	}
}

// webhook is the webhook w describes, served at path, without its match conditions (compared by name).
func (w webhookWant) webhook(path string) admissionregistrationv1.ValidatingWebhook {
	return admissionregistrationv1.ValidatingWebhook{
		Name: w.name,
		ClientConfig: admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
			Namespace: namespace, Name: serviceName, Path: ptr.To(path)}},
		Rules: []admissionregistrationv1.RuleWithOperations{{
			Operations: w.ops,
			Rule: admissionregistrationv1.Rule{APIGroups: []string{w.group}, APIVersions: []string{w.version},
				Resources: []string{w.resource}, Scope: ptr.To(admissionregistrationv1.NamespacedScope)},
		}},
		FailurePolicy: ptr.To(admissionregistrationv1.Fail),
		MatchPolicy:   ptr.To(admissionregistrationv1.Equivalent),
		NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
			Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn,
			Values: []string{"kube-system", namespace}}}},
		SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
		TimeoutSeconds:          ptr.To[int32](5),
		AdmissionReviewVersions: []string{"v1"},
	}
}

// mutatingAsValidating keeps what the tests compare across both kinds of webhook.
func mutatingAsValidating(ws []admissionregistrationv1.MutatingWebhook) []admissionregistrationv1.ValidatingWebhook {
	var out []admissionregistrationv1.ValidatingWebhook
	for _, w := range ws {
		out = append(out, admissionregistrationv1.ValidatingWebhook{Name: w.Name, ClientConfig: w.ClientConfig, Rules: w.Rules,
			FailurePolicy: w.FailurePolicy, NamespaceSelector: w.NamespaceSelector, MatchConditions: w.MatchConditions})
	}
	return out
}

// matchRequest runs a webhook's match conditions on one request the way the kube-apiserver's
// webhook dispatcher does; old is nil on CREATE.
func matchRequest(t *testing.T, w admissionregistrationv1.ValidatingWebhook, op admission.Operation, obj, old runtime.Object) matchconditions.MatchResult {
	t.Helper()
	return matchRequestBy(t, w, op, obj, old, "alice@example.com")
}

// matchRequestBy is matchRequest for a request of the given user.
func matchRequestBy(t *testing.T, w admissionregistrationv1.ValidatingWebhook, op admission.Operation, obj, old runtime.Object, username string) matchconditions.MatchResult {
	t.Helper()
	var exprs []plugincel.ExpressionAccessor
	for _, c := range w.MatchConditions {
		exprs = append(exprs, &matchconditions.MatchCondition{Name: c.Name, Expression: c.Expression})
	}
	eval := plugincel.NewConditionCompiler(celEnv).CompileCondition(exprs,
		plugincel.OptionalVariableDeclarations{HasAuthorizer: true}, environment.StoredExpressions)
	matcher := matchconditions.NewMatcher(eval, w.FailurePolicy, "webhook", "validating", w.Name)
	gvk := obj.GetObjectKind().GroupVersionKind()
	accessor, err := meta.Accessor(obj)
	if err != nil {
		t.Fatal(err)
	}
	resource, sub, _ := strings.Cut(w.Rules[0].Resources[0], "/")
	gvr := schema.GroupVersionResource{Group: w.Rules[0].APIGroups[0], Version: "v1", Resource: resource}
	var opts runtime.Object = &metav1.CreateOptions{}
	if op == admission.Update {
		opts = &metav1.UpdateOptions{}
	}
	attrs := admission.NewAttributesRecord(obj, old, gvk, accessor.GetNamespace(), accessor.GetName(), gvr, sub,
		op, opts, false, &user.DefaultInfo{Name: username})
	versioned, err := admission.NewVersionedAttributes(attrs, gvk, nil)
	if err != nil {
		t.Fatal(err)
	}
	return matcher.Match(context.Background(), versioned, nil, nil)
}

// TestValidatingMatchConditions: which requests reach the validator. Each case that must match is
// a way around the rules if it did not.
func TestValidatingMatchConditions(t *testing.T) {
	const (
		ns      = "team-ml"
		gpus    = "kaiwo.silogen.ai/gpus"
		managed = "kaiwo.silogen.ai/managed"
		user    = "kaiwo.silogen.ai/user"
		queue   = "kueue.x-k8s.io/queue-name"
		amdGPU  = corev1.ResourceName("amd.com/gpu")
	)
	job := func() *testobj.JobWrapper { return testobj.MakeJob("train", ns) }
	deployment := func() *testobj.DeploymentWrapper { return testobj.MakeDeployment("serve", ns) }
	rayJob := func() *testobj.RayJobWrapper { return testobj.MakeRayJob("finetune", ns, "workers") }
	rayService := func() *testobj.RayServiceWrapper { return testobj.MakeRayService("llm", ns, "workers") }
	gpuPod := func(owners ...metav1.OwnerReference) runtime.Object {
		p := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: ns, OwnerReferences: owners},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
		p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{amdGPU: resource.MustParse("8")}
		return p
	}
	initGPUPod := func() runtime.Object {
		p := gpuPod().(*corev1.Pod)
		p.Spec.InitContainers = []corev1.Container{{Name: "i", Image: "busybox", Resources: p.Spec.Containers[0].Resources}}
		p.Spec.Containers[0].Resources = corev1.ResourceRequirements{}
		return p
	}
	migPod := func() runtime.Object {
		p := gpuPod().(*corev1.Pod)
		p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"nvidia.com/mig-3g.40gb": resource.MustParse("7")}
		return p
	}
	draPod := func() runtime.Object {
		p := gpuPod().(*corev1.Pod)
		p.Spec.ResourceClaims = []corev1.PodResourceClaim{{Name: "g", ResourceClaimTemplateName: ptr.To("gpus")}}
		p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Claims: []corev1.ResourceClaim{{Name: "g"}}}
		return p
	}
	owner := func(apiVersion, kind string, controller bool) metav1.OwnerReference {
		return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: "o", UID: "u", Controller: ptr.To(controller)}
	}
	rayCluster := func(owners ...metav1.OwnerReference) runtime.Object {
		rs := rayService().Obj().Spec.RayClusterSpec
		testobj.Resources(&rs.WorkerGroupSpecs[0].Template, 0, amdGPU, "8")
		return toUnstructured(t, &rayv1.RayCluster{TypeMeta: metav1.TypeMeta{APIVersion: "ray.io/v1", Kind: "RayCluster"},
			ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: ns, OwnerReferences: owners}, Spec: rs})
	}
	statefulSet := func(gpu bool) runtime.Object {
		d := deployment().Obj()
		if gpu {
			testobj.Resources(&d.Spec.Template, 0, amdGPU, "1")
		}
		return &appsv1.StatefulSet{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
			ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: ns}, Spec: appsv1.StatefulSetSpec{Template: d.Spec.Template}}
	}
	scale := func(n int32) runtime.Object {
		return &autoscalingv1.Scale{TypeMeta: metav1.TypeMeta{APIVersion: "autoscaling/v1", Kind: "Scale"},
			ObjectMeta: metav1.ObjectMeta{Name: "serve", Namespace: ns}, Spec: autoscalingv1.ScaleSpec{Replicas: n}}
	}
	labelled := job().Label(managed, "true").Label(user, "alice").Label(queue, "team-ml").Annotate(gpus, "8")
	bare := job()

	cases := map[string]struct {
		webhook  string
		op       admission.Operation
		obj, old runtime.Object
		want     bool
	}{
		"plain Job CREATE":                    {"jobs", admission.Create, job().Obj(), nil, false},
		"annotated Job CREATE":                {"jobs", admission.Create, job().Annotate(gpus, "4").Obj(), nil, true},
		"GPU Job CREATE":                      {"jobs", admission.Create, job().Resource(0, amdGPU, "1").Obj(), nil, true},
		"Job with only the queue label":       {"jobs", admission.Create, job().Label(queue, "q").Obj(), nil, true},
		"Job UPDATE of the queue label":       {"jobs", admission.Update, job().Label(queue, "other").Obj(), job().Label(queue, "q").Obj(), true},
		"Job UPDATE adding the queue label":   {"jobs", admission.Update, job().Label(queue, "other").Obj(), bare.Obj(), true},
		"managed Job UPDATE":                  {"jobs", admission.Update, labelled.Obj(), labelled.Obj(), true},
		"UPDATE removing every Kaiwo key":     {"jobs", admission.Update, bare.Obj(), labelled.Obj(), true},
		"UPDATE removing only the labels":     {"jobs", admission.Update, bare.Obj(), job().Label(user, "alice").Obj(), true},
		"UPDATE of the managed label":         {"jobs", admission.Update, job().Label(managed, "false").Obj(), job().Label(managed, "true").Obj(), true},
		"plain Job UPDATE":                    {"jobs", admission.Update, job().Label("app", "x").Obj(), job().Obj(), false},
		"Job with a user label only":          {"jobs", admission.Create, job().Label(user, "bob").Obj(), nil, true},
		"RayJob UPDATE removing the keys":     {"rayjobs", admission.Update, rayJob().Obj(), rayJob().Annotate(gpus, "8").Obj(), true},
		"plain RayJob UPDATE":                 {"rayjobs", admission.Update, rayJob().Obj(), rayJob().Obj(), false},
		"GPU RayJob worker CREATE":            {"rayjobs", admission.Create, rayJob().WorkerResource(0, amdGPU, "8").Obj(), nil, true},
		"Deployment UPDATE to GPUs":           {"deployments", admission.Update, deployment().Resource(0, amdGPU, "1").Obj(), deployment().Obj(), true},
		"plain Deployment UPDATE":             {"deployments", admission.Update, deployment().Replicas(3).Obj(), deployment().Obj(), false},
		"RayService UPDATE removing the keys": {"rayservices", admission.Update, rayService().Obj(), rayService().Annotate(gpus, "8").Obj(), true},
		"scale up":                            {"deployments-scale", admission.Update, scale(100), scale(1), true},
		"scale from zero":                     {"deployments-scale", admission.Update, scale(1), scale(0), true},
		"scale down":                          {"deployments-scale", admission.Update, scale(1), scale(100), false},
		"scale unchanged":                     {"deployments-scale", admission.Update, scale(4), scale(4), false},
		"bare GPU Pod":                        {"pods", admission.Create, gpuPod(), nil, true},
		"bare Pod, GPU in an init container":  {"pods", admission.Create, initGPUPod(), nil, true},
		"bare Pod with MIG slices":            {"pods", admission.Create, migPod(), nil, true},
		"bare Pod with a DRA claim":           {"pods", admission.Create, draPod(), nil, true},
		"plain Pod": {"pods", admission.Create, &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: ns},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}, nil, false},
		"GPU Pod of a Job":                  {"pods", admission.Create, gpuPod(owner("batch/v1", "Job", true)), nil, true},
		"GPU Pod of a ReplicaSet":           {"pods", admission.Create, gpuPod(owner("apps/v1", "ReplicaSet", true)), nil, true},
		"GPU Pod of a RayCluster":           {"pods", admission.Create, gpuPod(owner("ray.io/v1", "RayCluster", true)), nil, true},
		"GPU Pod owned, not controlled":     {"pods", admission.Create, gpuPod(owner("batch/v1", "Job", false)), nil, true},
		"GPU Pod controlled by a ConfigMap": {"pods", admission.Create, gpuPod(owner("v1", "ConfigMap", true)), nil, true},
		"GPU Pod of a look-alike Job kind":  {"pods", admission.Create, gpuPod(owner("example.com/v1", "Job", true)), nil, true},
		"bare GPU RayCluster":               {"rayclusters", admission.Create, rayCluster(), nil, true},
		"RayCluster of a RayJob":            {"rayclusters", admission.Create, rayCluster(owner("ray.io/v1", "RayJob", true)), nil, true},
		"RayCluster of a RayService UPDATE": {"rayclusters", admission.Update, rayCluster(owner("ray.io/v1", "RayService", true)), rayCluster(owner("ray.io/v1", "RayService", true)), true},
		"GPU StatefulSet":                   {"statefulsets", admission.Create, statefulSet(true), nil, true},
		"GPU StatefulSet UPDATE":            {"statefulsets", admission.Update, statefulSet(true), statefulSet(false), true},
		"plain StatefulSet":                 {"statefulsets", admission.Create, statefulSet(false), nil, false},
	}
	// The cases above are a team user's requests (alice): a controller owner reference she writes by hand
	// exempts nothing. These are the controllers' own.
	byController := map[string]struct {
		webhook, user string
		op            admission.Operation
		obj, old      runtime.Object
		want          bool
	}{
		"GPU Pod the Job controller creates":            {"pods", "system:serviceaccount:kube-system:job-controller", admission.Create, gpuPod(owner("batch/v1", "Job", true)), nil, false},
		"GPU Pod the controller manager creates":        {"pods", "system:kube-controller-manager", admission.Create, gpuPod(owner("apps/v1", "ReplicaSet", true)), nil, false},
		"GPU Pod KubeRay creates":                       {"pods", "system:serviceaccount:ray-system:kuberay-operator", admission.Create, gpuPod(owner("ray.io/v1", "RayCluster", true)), nil, false},
		"RayCluster KubeRay creates":                    {"rayclusters", "system:serviceaccount:ray-system:kuberay-operator", admission.Create, rayCluster(owner("ray.io/v1", "RayJob", true)), nil, false},
		"RayCluster KubeRay updates":                    {"rayclusters", "system:serviceaccount:ray-system:kuberay-operator", admission.Update, rayCluster(owner("ray.io/v1", "RayJob", true)), rayCluster(owner("ray.io/v1", "RayJob", true)), true},
		"GPU Pod of a service account of the namespace": {"pods", "system:serviceaccount:team-ml:builder", admission.Create, gpuPod(owner("batch/v1", "Job", true)), nil, true},
		"GPU Pod of an anonymous request":               {"pods", "system:anonymous", admission.Create, gpuPod(owner("batch/v1", "Job", true)), nil, true},
		"bare GPU Pod the controller manager creates":   {"pods", "system:kube-controller-manager", admission.Create, gpuPod(), nil, true},
	}
	for render, objs := range renders(t) {
		v := into[admissionregistrationv1.ValidatingWebhookConfiguration](t, find(t, objs, "ValidatingWebhookConfiguration", ""))
		webhooks := map[string]admissionregistrationv1.ValidatingWebhook{}
		for _, w := range v.Webhooks {
			webhooks[w.Name] = w
		}
		t.Run(render, func(t *testing.T) {
			for name, tc := range cases {
				t.Run(name, func(t *testing.T) {
					w, ok := webhooks[tc.webhook+".validate.kaiwo.silogen.ai"]
					if !ok {
						t.Fatalf("no webhook %s.validate.kaiwo.silogen.ai", tc.webhook)
					}
					for _, form := range []string{"typed", "unstructured"} {
						obj, old := tc.obj, tc.old
						if form == "unstructured" {
							obj = toUnstructured(t, obj)
							if old != nil {
								old = toUnstructured(t, old)
							}
						}
						res := matchRequest(t, w, tc.op, obj, old)
						if res.Error != nil {
							t.Fatalf("%s: evaluation error (denies the request under Fail): %v", form, res.Error)
						}
						if res.Matches != tc.want {
							t.Errorf("%s: matches = %v, want %v (failed condition %q)", form, res.Matches, tc.want, res.FailedConditionName)
						}
					}
				})
			}
			for name, tc := range byController {
				t.Run(name, func(t *testing.T) {
					res := matchRequestBy(t, webhooks[tc.webhook+".validate.kaiwo.silogen.ai"], tc.op, tc.obj, tc.old, tc.user)
					if res.Error != nil {
						t.Fatalf("evaluation error (denies the request under Fail): %v", res.Error)
					}
					if res.Matches != tc.want {
						t.Errorf("matches = %v, want %v (failed condition %q)", res.Matches, tc.want, res.FailedConditionName)
					}
				})
			}
		})
	}
}

// TestValidatorSeesWhatTheMutatorSees: on CREATE, every object the mutating webhook of a kind is
// sent is also sent to its validator (the validator's condition only widens the mutator's).
func TestValidatorSeesWhatTheMutatorSees(t *testing.T) {
	const ns = "team-ml"
	samples := map[string][]runtime.Object{
		"jobs": {testobj.MakeJob("a", ns).Annotate("kaiwo.silogen.ai/gpus", "1").Obj(), testobj.MakeJob("b", ns).Label("kaiwo.silogen.ai/managed", "true").Obj(),
			testobj.MakeJob("c", ns).Resource(0, "nvidia.com/gpu", "1").Obj()},
		"deployments": {testobj.MakeDeployment("a", ns).Resource(0, "amd.com/gpu", "1").Obj(), testobj.MakeDeployment("b", ns).Annotate("kaiwo.silogen.ai/queue", "q").Obj()},
		"rayjobs":     {testobj.MakeRayJob("a", ns, "w").WorkerResource(0, "amd.com/gpu", "8").Obj(), testobj.MakeRayJob("b", ns, "w").Annotate("kaiwo.silogen.ai/gpus", "8").Obj()},
		"rayservices": {testobj.MakeRayService("a", ns, "w").Annotate("kaiwo.silogen.ai/gpus", "8").Obj()},
	}
	for render, objs := range renders(t) {
		m := into[admissionregistrationv1.MutatingWebhookConfiguration](t, find(t, objs, "MutatingWebhookConfiguration", ""))
		v := into[admissionregistrationv1.ValidatingWebhookConfiguration](t, find(t, objs, "ValidatingWebhookConfiguration", ""))
		validators := map[string]admissionregistrationv1.ValidatingWebhook{}
		for _, w := range v.Webhooks {
			validators[w.Name] = w
		}
		for _, mw := range m.Webhooks {
			kind, _, _ := strings.Cut(mw.Name, ".")
			vw, ok := validators[kind+".validate.kaiwo.silogen.ai"]
			if !ok {
				t.Errorf("%s: mutating webhook %s has no validator", render, mw.Name)
				continue
			}
			for _, obj := range samples[kind] {
				if mr := match(t, mw, obj); mr.Matches {
					if vr := matchRequest(t, vw, admission.Create, obj, nil); !vr.Matches || vr.Error != nil {
						t.Errorf("%s: %s %s reaches the mutator but not the validator (%v)", render, kind, obj.(metav1.Object).GetName(), vr.Error)
					}
				} else {
					t.Errorf("%s: sample %s %s does not reach the mutator", render, kind, obj.(metav1.Object).GetName())
				}
			}
		}
	}
}
