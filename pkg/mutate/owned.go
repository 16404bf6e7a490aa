package mutate

import (
	"sigs.k8s.io/controller-runtime/pkg/client"
)

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
	case jobKind.GVK:
		owners = jobOwners
	case podKind.GVK:
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
	return kind.GVK == podKind.GVK && controlledBy(obj, podOwners)
}
