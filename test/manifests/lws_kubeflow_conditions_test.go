package manifests_test

import (
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apiserver/pkg/admission"
)

// TestLWSAndKubeflowConditions: the mutating and validating webhooks of LeaderWorkerSets, PyTorchJobs and
// TrainJobs (spec.trainer.resourcesPerNode, as they have no template)
// see every object that asks for GPUs in any of its templates (leader, worker, every replica type, init
// containers) or for Kaiwo, and no plain one; objects without the fields the conditions walk do not make
// them error.
func TestLWSAndKubeflowConditions(t *testing.T) {
	gpuPod := func(list string) map[string]any {
		return map[string]any{"spec": map[string]any{list: []any{map[string]any{"name": "c",
			"resources": map[string]any{"limits": map[string]any{"amd.com/gpu": "8"}}}}}}
	}
	plainPod := map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "c"}}}}
	obj := func(apiVersion, kind string, meta map[string]any, spec map[string]any) *unstructured.Unstructured {
		m := map[string]any{"name": "x", "namespace": "team-ml"}
		for k, v := range meta {
			m[k] = v
		}
		o := map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": m}
		if spec != nil {
			o["spec"] = spec
		}
		return &unstructured.Unstructured{Object: o}
	}
	lws := func(meta map[string]any, leader, worker map[string]any) *unstructured.Unstructured {
		lwt := map[string]any{"size": int64(2)}
		if leader != nil {
			lwt["leaderTemplate"] = leader
		}
		if worker != nil {
			lwt["workerTemplate"] = worker
		}
		return obj("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", meta, map[string]any{"leaderWorkerTemplate": lwt})
	}
	pt := func(meta map[string]any, specs map[string]any) *unstructured.Unstructured {
		return obj("kubeflow.org/v1", "PyTorchJob", meta, map[string]any{"pytorchReplicaSpecs": specs})
	}
	tj := func(meta map[string]any, resources map[string]any) *unstructured.Unstructured {
		trainer := map[string]any{"numNodes": int64(2)}
		if resources != nil {
			trainer["resourcesPerNode"] = resources
		}
		return obj("trainer.kubeflow.org/v1alpha1", "TrainJob", meta, map[string]any{"runtimeRef": map[string]any{"name": "torch"}, "trainer": trainer})
	}
	annotated := map[string]any{"annotations": map[string]any{"kaiwo.silogen.ai/gpus": "16"}}
	cases := map[string]struct {
		webhook string
		obj     *unstructured.Unstructured
		want    bool
	}{
		"plain LWS":                        {"leaderworkersets", lws(nil, plainPod, plainPod), false},
		"annotated LWS":                    {"leaderworkersets", lws(annotated, nil, plainPod), true},
		"LWS with a GPU leader":            {"leaderworkersets", lws(nil, gpuPod("containers"), plainPod), true},
		"LWS with a GPU worker":            {"leaderworkersets", lws(nil, nil, gpuPod("containers")), true},
		"LWS with a GPU init container":    {"leaderworkersets", lws(nil, gpuPod("initContainers"), plainPod), true},
		"LWS without templates":            {"leaderworkersets", lws(nil, nil, nil), false},
		"LWS without spec":                 {"leaderworkersets", obj("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", nil, nil), false},
		"plain PyTorchJob":                 {"pytorchjobs", pt(nil, map[string]any{"Master": map[string]any{"template": plainPod}}), false},
		"annotated PyTorchJob":             {"pytorchjobs", pt(annotated, map[string]any{"Master": map[string]any{"template": plainPod}}), true},
		"PyTorchJob with a GPU Worker":     {"pytorchjobs", pt(nil, map[string]any{"Master": map[string]any{"template": plainPod}, "Worker": map[string]any{"template": gpuPod("containers")}}), true},
		"PyTorchJob with GPUs in any key":  {"pytorchjobs", pt(nil, map[string]any{"Evil": map[string]any{"template": gpuPod("initContainers")}}), true},
		"PyTorchJob replica w/o template":  {"pytorchjobs", pt(nil, map[string]any{"Worker": map[string]any{"replicas": int64(2)}}), false},
		"plain TrainJob":                   {"trainjobs", tj(nil, map[string]any{"limits": map[string]any{"cpu": "4"}}), false},
		"TrainJob without trainer":         {"trainjobs", obj("trainer.kubeflow.org/v1alpha1", "TrainJob", nil, map[string]any{}), false},
		"annotated TrainJob":               {"trainjobs", tj(annotated, nil), true},
		"TrainJob with GPU limits":         {"trainjobs", tj(nil, map[string]any{"limits": map[string]any{"amd.com/gpu": "8"}}), true},
		"TrainJob with GPU requests only":  {"trainjobs", tj(nil, map[string]any{"requests": map[string]any{"nvidia.com/mig-1g.10gb": "1"}}), true},
		"TrainJob with a device claim":     {"trainjobs", tj(nil, map[string]any{"claims": []any{map[string]any{"name": "g"}}}), true},
		"PyTorchJob without replica specs": {"pytorchjobs", obj("kubeflow.org/v1", "PyTorchJob", nil, map[string]any{}), false},
	}
	for render, objs := range renders(t) {
		m := into[admissionregistrationv1.MutatingWebhookConfiguration](t, find(t, objs, "MutatingWebhookConfiguration", ""))
		v := into[admissionregistrationv1.ValidatingWebhookConfiguration](t, find(t, objs, "ValidatingWebhookConfiguration", ""))
		hooks := map[string]admissionregistrationv1.ValidatingWebhook{}
		for _, w := range append(mutatingAsValidating(m.Webhooks), v.Webhooks...) {
			hooks[w.Name] = w
		}
		t.Run(render, func(t *testing.T) {
			for name, tc := range cases {
				for _, suffix := range []string{".kaiwo.silogen.ai", ".validate.kaiwo.silogen.ai"} {
					t.Run(name+suffix, func(t *testing.T) {
						w, ok := hooks[tc.webhook+suffix]
						if !ok {
							t.Fatalf("no webhook %s%s", tc.webhook, suffix)
						}
						res := matchRequest(t, w, admission.Create, tc.obj, nil)
						if res.Error != nil {
							t.Fatalf("evaluation error (denies the request under Fail): %v", res.Error)
						}
						if res.Matches != tc.want {
							t.Errorf("matches = %v, want %v (failed condition %q)", res.Matches, tc.want, res.FailedConditionName)
						}
					})
				}
			}
		})
	}
}
