package manifests_test

import (
	"encoding/json"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/internal/testobj"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// TestPartConditionsAgreeWithTheServer: a RayCluster or Job that the validating conditions keep away is
// one the server would allow (mutate.Validate under an Enforce policy), whatever controls it and whoever
// creates it; the only ones kept away are the parts of a RayJob, RayService or JobSet that their
// controller creates. And the mutating webhook never sees a part: the server leaves parts alone.
func TestPartConditionsAgreeWithTheServer(t *testing.T) {
	const ns = "team-ml"
	pol := &policy.Policy{Name: "team-ml", Mode: policy.Enforce}
	owners := [][2]string{{"batch/v1", "Job"}, {"ray.io/v1", "RayJob"}, {"ray.io/v1", "RayService"}, {"ray.io/v1", "RayCluster"},
		{"jobset.x-k8s.io/v1alpha2", "JobSet"}, {"jobset.x-k8s.io/v1", "JobSet"}, {"v1", "ConfigMap"}, {}}
	objects := map[string]func(refs []metav1.OwnerReference) client.Object{
		"rayclusters": func(refs []metav1.OwnerReference) client.Object {
			c := testobj.MakeRayCluster("c", ns, "w").Workers(0, 2, "amd.com/gpu", "8").Obj()
			c.OwnerReferences = refs
			return c
		},
		"jobs": func(refs []metav1.OwnerReference) client.Object {
			j := testobj.MakeJob("j", ns).Resource(0, "amd.com/gpu", "8").Obj()
			j.OwnerReferences = refs
			return j
		},
	}
	parts := map[string]string{"rayclusters": "not-part-of-a-workload", "jobs": "not-part-of-a-workload"}
	for render, objs := range renders(t) {
		mutators, validators := webhooksByName(t, objs)
		for resource, build := range objects {
			for _, o := range owners {
				for _, username := range []string{"alice@example.com", "system:serviceaccount:ray-system:kuberay-operator", "system:serviceaccount:team-ml:builder", "system:kube-controller-manager"} {
					var refs []metav1.OwnerReference
					if o[1] != "" {
						refs = []metav1.OwnerReference{{APIVersion: o[0], Kind: o[1], Name: "o", UID: "u", Controller: ptr.To(true)}}
					}
					obj := build(refs)
					raw, err := json.Marshal(obj)
					if err != nil {
						t.Fatal(err)
					}
					kind, _ := mutate.Builtin().ForObject(obj)
					_, verr := mutate.Validate(mutate.Review{Operation: mutate.OpCreate, Kind: kind, Object: obj, Raw: raw, Policy: pol, User: username})
					denied := verr != nil
					res := matchRequestBy(t, validators[resource+".validate.kaiwo.silogen.ai"], admission.Create, toUnstructured(t, obj), nil, username)
					if res.Error != nil {
						t.Fatalf("%s %s owned by %v: %v", render, resource, o, res.Error)
					}
					if denied && !res.Matches {
						t.Errorf("%s: a %s controlled by %v, created by %s, is denied by the server (%v) but kept away by condition %q", render, resource, o, username, verr, res.FailedConditionName)
					}
					if !denied && res.Matches {
						t.Errorf("%s: a %s controlled by %v, created by %s, is allowed by the server but still sent (cost on the hot path)", render, resource, o, username)
					}
					out, merr := mutate.Mutate(mutate.Input{Kind: kind, Object: obj, Policy: pol, User: username})
					mr := match(t, mutators[resource+".kaiwo.silogen.ai"], toUnstructured(t, obj))
					if merr == nil && !out.Managed && mr.Matches {
						t.Errorf("%s: a %s controlled by %v is left alone by the server but sent to the mutator", render, resource, o)
					}
					if (merr != nil || out.Managed) && !mr.Matches {
						t.Errorf("%s: a %s controlled by %v is mutated by the server but kept away by condition %q", render, resource, o, mr.FailedConditionName)
					}
					if !mr.Matches && mr.FailedConditionName != parts[resource] {
						t.Errorf("%s: a GPU %s controlled by %v is kept away from the mutator by %q", render, resource, o, mr.FailedConditionName)
					}
				}
			}
		}
	}
}

// TestMultiPodKindConditions: the RayCluster and JobSet webhooks are sent what asks for Kaiwo or GPUs in
// any template, and objects without the fields the conditions walk do not make them error (an error
// denies the request under Fail).
func TestMultiPodKindConditions(t *testing.T) {
	const ns = "team-ml"
	gpuContainer := map[string]any{"name": "w", "resources": map[string]any{"limits": map[string]any{"nvidia.com/gpu": "1"}}}
	jobSet := func(spec map[string]any) map[string]any {
		return map[string]any{"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "metadata": map[string]any{"name": "s", "namespace": ns}, "spec": spec}
	}
	cases := map[string]struct {
		webhook string
		obj     map[string]any
		want    bool
	}{
		"JobSet without spec": {"jobsets", map[string]any{"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet",
			"metadata": map[string]any{"name": "s", "namespace": ns}}, false},
		"replicated job without template, then a GPU one": {"jobsets", jobSet(map[string]any{"replicatedJobs": []any{
			map[string]any{"name": "a"}, map[string]any{"name": "b", "template": map[string]any{}},
			map[string]any{"name": "c", "template": map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
				"initContainers": []any{gpuContainer}}}}}}}}), true},
		"plain JobSet": {"jobsets", toUnstructured(t, testobj.MakeJobSet("s", ns, "a", "b").Obj()).Object, false},
		"JobSet with GPUs in its second replicated job": {"jobsets", toUnstructured(t, testobj.MakeJobSet("s", ns, "a", "b").Resource(1, "amd.com/gpu", "8").Obj()).Object, true},
		"RayCluster without spec": {"rayclusters", map[string]any{"apiVersion": "ray.io/v1", "kind": "RayCluster",
			"metadata": map[string]any{"name": "c", "namespace": ns}}, false},
		"RayCluster with a GPU head": {"rayclusters", map[string]any{"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": map[string]any{"name": "c", "namespace": ns},
			"spec": map[string]any{"headGroupSpec": map[string]any{"template": map[string]any{"spec": map[string]any{"containers": []any{gpuContainer}}}},
				"workerGroupSpecs": []any{map[string]any{"groupName": "w"}}}}, true},
		"plain RayCluster":     {"rayclusters", toUnstructured(t, testobj.MakeRayCluster("c", ns, "w").Obj()).Object, false},
		"annotated RayCluster": {"rayclusters", toUnstructured(t, testobj.MakeRayCluster("c", ns, "w").Annotate("kaiwo.silogen.ai/gpus", "8").Obj()).Object, true},
	}
	for render, objs := range renders(t) {
		mutators, validators := webhooksByName(t, objs)
		for name, tc := range cases {
			obj := &unstructured.Unstructured{Object: tc.obj}
			mr := match(t, mutators[tc.webhook+".kaiwo.silogen.ai"], obj)
			vr := matchRequest(t, validators[tc.webhook+".validate.kaiwo.silogen.ai"], admission.Create, obj, nil)
			if mr.Error != nil || vr.Error != nil {
				t.Fatalf("%s %s: evaluation error: %v %v", render, name, mr.Error, vr.Error)
			}
			if mr.Matches != tc.want || vr.Matches != tc.want {
				t.Errorf("%s %s: mutator matches %v, validator %v; want %v", render, name, mr.Matches, vr.Matches, tc.want)
			}
		}
	}
}

// webhooksByName are the mutating and validating webhooks of a render, by name.
func webhooksByName(t *testing.T, objs []*unstructured.Unstructured) (map[string]admissionregistrationv1.MutatingWebhook, map[string]admissionregistrationv1.ValidatingWebhook) {
	t.Helper()
	mutators, validators := map[string]admissionregistrationv1.MutatingWebhook{}, map[string]admissionregistrationv1.ValidatingWebhook{}
	for _, w := range into[admissionregistrationv1.MutatingWebhookConfiguration](t, find(t, objs, "MutatingWebhookConfiguration", "")).Webhooks {
		mutators[w.Name] = w
	}
	for _, w := range into[admissionregistrationv1.ValidatingWebhookConfiguration](t, find(t, objs, "ValidatingWebhookConfiguration", "")).Webhooks {
		validators[w.Name] = w
	}
	return mutators, validators
}
