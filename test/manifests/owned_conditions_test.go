package manifests_test

import (
	"encoding/json"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// TestJobConditionsAgreeWithTheServer: a Job's owner is the CronJob (Kind.Owners). A Job the jobs webhooks'
// match conditions keep away is one the server would neither change nor deny under an Enforce policy,
// whatever owns it, whoever creates or updates it; the Jobs the CronJob controller creates never reach
// either webhook, while the same Job from a team user, or any UPDATE of one, does.
func TestJobConditionsAgreeWithTheServer(t *testing.T) {
	const ns = "team-ml"
	pol := &policy.Policy{Name: "team-ml", Mode: policy.Enforce}
	jobKind, ok := mutate.Builtin().For(batchv1.SchemeGroupVersion.WithKind("Job"))
	if !ok {
		t.Fatal("Jobs are not a built-in kind")
	}
	build := func(o [2]string, controller bool) *batchv1.Job {
		j := &batchv1.Job{TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"}, ObjectMeta: metav1.ObjectMeta{Name: "j", Namespace: ns},
			Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{Name: "c", Image: "busybox", Resources: corev1.ResourceRequirements{
					Limits: corev1.ResourceList{"amd.com/gpu": resource.MustParse("8")}}}}}}}}
		if o[1] != "" {
			j.OwnerReferences = []metav1.OwnerReference{{APIVersion: o[0], Kind: o[1], Name: "o", UID: "u", Controller: ptr.To(controller)}}
		}
		return j
	}
	controllerUser := "system:serviceaccount:kube-system:cronjob-controller"
	owners := [][2]string{{"batch/v1", "CronJob"}, {"apps/v1", "Deployment"}, {"batch/v1", "Job"}, {}}
	for render, objs := range renders(t) {
		hooks := map[string]admissionregistrationv1.ValidatingWebhook{}
		for _, h := range into[admissionregistrationv1.ValidatingWebhookConfiguration](t, find(t, objs, "ValidatingWebhookConfiguration", "")).Webhooks {
			hooks[h.Name] = h
		}
		for _, h := range mutatingAsValidating(into[admissionregistrationv1.MutatingWebhookConfiguration](t, find(t, objs, "MutatingWebhookConfiguration", "")).Webhooks) {
			hooks[h.Name] = h
		}
		validating, mutating := hooks["jobs.validate.kaiwo.silogen.ai"], hooks["jobs.kaiwo.silogen.ai"]
		keptAway := 0
		for _, o := range owners {
			for _, controller := range []bool{true, false} {
				for _, user := range []string{"alice@example.com", controllerUser, "system:serviceaccount:team-ml:builder"} {
					for _, op := range []admission.Operation{admission.Create, admission.Update} {
						obj := build(o, controller)
						var old client.Object
						if op == admission.Update {
							j := build(o, controller)
							j.Spec.Parallelism = ptr.To[int32](2) // an UPDATE that changes something
							old = j
						}
						res, verr := validateAndMatch(t, validating, jobKind, op, obj, old, user, pol)
						if verr != nil && !res.Matches {
							t.Errorf("%s: %s of a GPU Job controlled=%v by %v by %s is denied by the server (%v) but kept away by %q", render, op, controller, o, user, verr, res.FailedConditionName)
						}
						fromCronJob := o[1] == "CronJob" && controller && user == controllerUser && op == admission.Create
						if res.Matches == fromCronJob {
							t.Errorf("%s: %s of a GPU Job controlled=%v by %v by %s: sent to the validator %v, want %v", render, op, controller, o, user, res.Matches, !fromCronJob)
						}
						if op != admission.Create {
							continue
						}
						m := matchRequestBy(t, mutating, op, obj, nil, user)
						if m.Error != nil {
							t.Fatalf("%s: %v", render, m.Error)
						}
						if m.Matches == fromCronJob {
							t.Errorf("%s: CREATE of a GPU Job controlled=%v by %v by %s: sent to the mutator %v, want %v", render, controller, o, user, m.Matches, !fromCronJob)
						}
						if !m.Matches {
							keptAway++
							out, err := mutate.Mutate(mutate.Input{Kind: jobKind, Object: build(o, controller), Policy: pol, User: user})
							if err != nil || out.Managed {
								t.Errorf("%s: a Job kept from the mutator is one the server mutates (%v, managed %v)", render, err, out != nil && out.Managed)
							}
						}
					}
				}
			}
		}
		if keptAway == 0 {
			t.Errorf("%s: no Job kept away: the cases do not exercise the condition", render)
		}
	}
}

// validateAndMatch runs one request, op of obj (old on UPDATE, else nil) by user, through w's match
// conditions and through the server's Validate under pol: whether w sends it, and the server's answer.
func validateAndMatch(t *testing.T, w admissionregistrationv1.ValidatingWebhook, kind mutate.Kind, op admission.Operation,
	obj, old client.Object, user string, pol *policy.Policy) (matchconditions.MatchResult, error) {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	r := mutate.Review{Operation: string(op), Kind: kind, Object: obj, Raw: raw, Policy: pol, User: user}
	var res matchconditions.MatchResult
	if old == nil {
		res = matchRequestBy(t, w, op, obj, nil, user)
	} else {
		if r.OldRaw, err = json.Marshal(old); err != nil {
			t.Fatal(err)
		}
		r.Old = old
		res = matchRequestBy(t, w, op, obj, old, user)
	}
	if res.Error != nil {
		t.Fatalf("%s: %v", w.Name, res.Error)
	}
	_, verr := mutate.Validate(r)
	return res, verr
}
