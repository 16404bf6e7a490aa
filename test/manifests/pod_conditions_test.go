package manifests_test

import (
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// TestPodConditionsAgreeWithTheServer: Pods are a handled kind. A Pod the validating webhook's match
// conditions keep away is one the server would allow (mutate.Validate under an Enforce policy), whatever
// controls it, whoever creates or updates it; every one the server would deny is sent. And the Pods a
// controller creates from a workload's template, or that anyone updates, never reach the webhook: the busy
// Pod path.
func TestPodConditionsAgreeWithTheServer(t *testing.T) {
	const ns = "team-ml"
	pol := &policy.Policy{Name: "team-ml", Mode: policy.Enforce}
	owners := [][2]string{{"batch/v1", "Job"}, {"apps/v1", "ReplicaSet"}, {"apps/v1", "StatefulSet"}, {"ray.io/v1", "RayCluster"},
		{"apps/v1", "DaemonSet"}, {"v1", "ConfigMap"}, {"example.com/v1", "Job"}, {}}
	build := func(o [2]string, controller, gpu bool) *corev1.Pod {
		p := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: ns},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
		if o[1] != "" {
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: o[0], Kind: o[1], Name: "o", UID: "u", Controller: ptr.To(controller)}}
		}
		if gpu {
			p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"amd.com/gpu": resource.MustParse("8")}
		}
		return p
	}
	controllerUser := "system:serviceaccount:kube-system:job-controller"
	podKind, ok := mutate.Builtin().For(corev1.SchemeGroupVersion.WithKind("Pod"))
	if !ok {
		t.Fatal("Pods are not a built-in kind")
	}
	for render, objs := range renders(t) {
		v := into[admissionregistrationv1.ValidatingWebhookConfiguration](t, find(t, objs, "ValidatingWebhookConfiguration", ""))
		var w admissionregistrationv1.ValidatingWebhook
		for _, h := range v.Webhooks {
			if h.Name == "pods.validate.kaiwo.silogen.ai" {
				w = h
			}
		}
		sent, keptAway := 0, 0
		for _, o := range owners {
			for _, controller := range []bool{true, false} {
				for _, gpu := range []bool{true, false} {
					for _, user := range []string{"alice@example.com", controllerUser, "system:serviceaccount:team-ml:builder"} {
						for _, op := range []admission.Operation{admission.Create, admission.Update} {
							obj := build(o, controller, gpu)
							var old client.Object
							if op == admission.Update {
								old = obj.DeepCopy()
							}
							res, verr := validateAndMatch(t, w, podKind, op, obj, old, user, pol)
							if res.Matches {
								sent++
							} else {
								keptAway++
							}
							if verr != nil && !res.Matches {
								t.Errorf("%s: %s of a Pod (gpu=%v) controlled=%v by %v by %s is denied by the server (%v) but kept away by %q", render, op, gpu, controller, o, user, verr, res.FailedConditionName)
							}
							fromController := o[1] != "" && controller && o[0] != "v1" && o[0] != "example.com/v1" && o[1] != "DaemonSet"
							// The busy Pod path: a controller's requests for the Pods it controls never reach the
							// webhook; a team user's UPDATE of such a Pod does (a toleration added to a pending Pod).
							if fromController && user == controllerUser && res.Matches {
								t.Errorf("%s: %s of a Pod controlled by %v by %s reaches the webhook: the busy Pod path must not", render, op, o, user)
							}
						}
					}
				}
			}
		}
		// The mutating pods webhook: a workload's Pod from its controller never reaches it; the same Pod
		// from a team user does (the server leaves it unmutated, the validator denies it in Enforce).
		m := into[admissionregistrationv1.MutatingWebhookConfiguration](t, find(t, objs, "MutatingWebhookConfiguration", ""))
		for _, h := range mutatingAsValidating(m.Webhooks) {
			if h.Name != "pods.kaiwo.silogen.ai" {
				continue
			}
			ofJob := build([2]string{"batch/v1", "Job"}, true, true)
			if res := matchRequestBy(t, h, admission.Create, ofJob, nil, controllerUser); res.Error != nil || res.Matches {
				t.Errorf("%s: a Job's GPU Pod from the Job controller reaches the mutating webhook (%+v)", render, res)
			}
			if res := matchRequestBy(t, h, admission.Create, ofJob, nil, "alice@example.com"); res.Error != nil || !res.Matches {
				t.Errorf("%s: a team user's GPU Pod with a Job owner is kept from the mutating webhook (%+v)", render, res)
			}
			if res := matchRequestBy(t, h, admission.Create, build([2]string{}, false, true), nil, "alice@example.com"); res.Error != nil || !res.Matches {
				t.Errorf("%s: a bare GPU Pod is kept from the mutating webhook (%+v)", render, res)
			}
		}
		if sent == 0 || keptAway == 0 {
			t.Errorf("%s: %d requests sent, %d kept away: the cases do not exercise both sides", render, sent, keptAway)
		}
	}
}
