package manifests_test

import (
	"encoding/json"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/utils/ptr"

	"github.com/silogen/kaiwo-webhook/internal/testobj"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// TestUnhandledConditionsAgreeWithTheServer: a ReplicaSet or DaemonSet that the match
// conditions keep away from the validator is one the server would allow (Registry.ValidateUnhandledBy
// under an Enforce policy), whatever controls it and whoever creates it; and every one the server
// would deny is sent.
func TestUnhandledConditionsAgreeWithTheServer(t *testing.T) {
	const ns = "team-ml"
	pol := &policy.Policy{Name: "team-ml", Mode: policy.Enforce}
	owners := [][2]string{{"batch/v1", "Job"}, {"apps/v1", "Deployment"}, {"apps/v1", "ReplicaSet"}, {"apps/v1", "StatefulSet"},
		{"apps/v1", "DaemonSet"}, {"batch/v1", "CronJob"}, {"v1", "Pod"}, {"ray.io/v1", "RayJob"}, {"ray.io/v1", "RayService"}, {"ray.io/v1", "RayCluster"},
		{"jobset.x-k8s.io/v1alpha2", "JobSet"}, {"leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"}, {"kubeflow.org/v1", "PyTorchJob"},
		{"trainer.kubeflow.org/v1alpha1", "TrainJob"}, {"v1", "ConfigMap"}, {"example.com/v1", "Job"}, {"batch/v1beta1", "Job"}, {"kueue.x-k8s.io/v1beta2", "Workload"}}
	objects := map[string]func(refs []metav1.OwnerReference) runtime.Object{
		"replicasets": func(refs []metav1.OwnerReference) runtime.Object {
			d := testobj.MakeDeployment("d", ns).Resource(0, "amd.com/gpu", "1").Obj()
			return &appsv1.ReplicaSet{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "ReplicaSet"},
				ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: ns, OwnerReferences: refs}, Spec: appsv1.ReplicaSetSpec{Template: d.Spec.Template}}
		},
		"daemonsets": func(refs []metav1.OwnerReference) runtime.Object {
			d := testobj.MakeDeployment("d", ns).Resource(0, "amd.com/gpu", "1").Obj()
			return &appsv1.DaemonSet{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"},
				ObjectMeta: metav1.ObjectMeta{Name: "ds", Namespace: ns, OwnerReferences: refs}, Spec: appsv1.DaemonSetSpec{Template: d.Spec.Template}}
		},
	}
	for render, objs := range renders(t) {
		v := into[admissionregistrationv1.ValidatingWebhookConfiguration](t, find(t, objs, "ValidatingWebhookConfiguration", ""))
		webhooks := map[string]admissionregistrationv1.ValidatingWebhook{}
		for _, w := range v.Webhooks {
			webhooks[w.Name] = w
		}
		for resource, build := range objects {
			w := webhooks[resource+".validate.kaiwo.silogen.ai"]
			for _, o := range append(owners, [2]string{}) {
				for _, controller := range []bool{true, false} {
					for _, username := range []string{"alice@example.com", "system:serviceaccount:kube-system:job-controller", "system:serviceaccount:team-ml:builder"} {
						var refs []metav1.OwnerReference
						if o[1] != "" {
							refs = []metav1.OwnerReference{{APIVersion: o[0], Kind: o[1], Name: "o", UID: "u", Controller: ptr.To(controller)}}
						}
						obj := build(refs)
						raw, err := json.Marshal(obj)
						if err != nil {
							t.Fatal(err)
						}
						denied := mutate.Builtin().ValidateUnhandledBy(raw, pol, username) != nil
						res := matchRequestBy(t, w, admission.Create, obj, nil, username)
						if res.Error != nil {
							t.Fatalf("%s %s owned by %v: %v", render, resource, o, res.Error)
						}
						if denied && !res.Matches {
							t.Errorf("%s: a %s controlled=%v by %v, created by %s, is denied by the server but kept away by condition %q", render, resource, controller, o, username, res.FailedConditionName)
						}
						if !denied && res.Matches {
							t.Errorf("%s: a %s controlled=%v by %v, created by %s, is allowed by the server but still sent (cost on the hot path)", render, resource, controller, o, username)
						}
					}
				}
			}
		}
	}
}
