package mutate

import (
	"encoding/json"
	"fmt"

	"github.com/tidwall/gjson"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// podOwners are the controllers whose Pods come from a template Kaiwo checked as that controller or the
// workload that created it: a Job's, a Deployment's ReplicaSet's, a StatefulSet's, a RayJob's or RayService's
// RayCluster's.
var podOwners = map[string]bool{
	"batch/v1 Job": true, "apps/v1 Deployment": true, "apps/v1 ReplicaSet": true, "apps/v1 StatefulSet": true,
	"ray.io/v1 RayJob": true, "ray.io/v1 RayService": true, "ray.io/v1 RayCluster": true,
}

// jobOwners are the controllers whose Jobs come from a template Kaiwo checked as that controller: a
// CronJob's job template.
var jobOwners = map[string]bool{"batch/v1 CronJob": true}

// fromCheckedTemplate reports whether obj, of kind, is created by a controller from a template that Kaiwo
// already checked as its owner: its controller owner reference names such an owner (a CronJob for a Job),
// and the request is a controller's (see systemRequest). Such an object is left alone on CREATE: it carries
// what the template says, and mutating it again, or checking it against rules meant for what a team user
// writes, could change or deny what its owner was admitted with. A team user who writes the owner reference
// by hand gets it handled as any object of its kind.
func fromCheckedTemplate(kind Kind, obj client.Object, user string) bool {
	var owners map[string]bool
	switch kind.GVK {
	case batchv1.SchemeGroupVersion.WithKind("Job"):
		owners = jobOwners
	case podGVK:
		owners = podOwners
	default:
		return false
	}
	return controlledBy(obj, owners) && systemRequest(user, obj.GetNamespace())
}

// controlledBy reports whether obj's controller owner reference names one of owners ("apiVersion Kind").
func controlledBy(obj client.Object, owners map[string]bool) bool {
	for _, o := range obj.GetOwnerReferences() {
		if o.Controller != nil && *o.Controller && owners[o.APIVersion+" "+o.Kind] {
			return true
		}
	}
	return false
}

// ownedPod reports whether obj is a Pod whose controller owner reference names a handled workload or a
// controller one creates (podOwners). Such a Pod is never mutated, whoever creates it, as before Pods were
// handled: a controller's comes from a template already checked, and a team user's is checked by Validate
// as an object of a kind Kaiwo does not handle.
func ownedPod(kind Kind, obj client.Object) bool {
	return kind.GVK == podGVK && controlledBy(obj, podOwners)
}

var podGVK = corev1.SchemeGroupVersion.WithKind("Pod")

// forgedPod denies, in an Enforce namespace, a Pod that asks for GPUs and names a workload as its controller
// (see ownedPod) when no controller makes the request (an empty user, offline, trusts the reference): Kueue's
// pod webhook does not gate a Pod whose owner it manages, so such a Pod could not be queued.
func forgedPod(obj client.Object, pol *policy.Policy, user string) error {
	if pol.Mode != policy.Enforce || user == "" || systemRequest(user, obj.GetNamespace()) {
		return nil
	}
	spec, err := json.Marshal(obj.(*corev1.Pod).Spec)
	if err != nil {
		return err
	}
	p, q := findGPU(gjson.ParseBytes(spec), field.NewPath("spec"), 0)
	if p == nil {
		return nil
	}
	return &Denial{ReasonPolicy, field.ErrorList{field.Forbidden(p, fmt.Sprintf(
		"asks for GPUs (%s) in a namespace whose KaiwoPolicy %q is in Enforce mode, and the Pod's controller owner reference names a workload, which exempts it only when a controller makes the request, not %q: remove the owner reference to have it handled as a Pod",
		q, pol.Name, user))}}
}
