package mutate

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/tidwall/gjson"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// fromCheckedTemplate reports whether obj, of kind, is created by a controller from a template that Kaiwo
// already checked as its owner: its controller owner reference names one of kind's owners (Kind.Owners: a
// CronJob for a Job, a workload for a Pod), and the request is a controller's (see systemRequest). Such an
// object is left alone on CREATE: it carries what the template says, and mutating it again, or checking it
// against rules meant for what a team user writes, could change or deny what its owner was admitted with. A
// team user who writes the owner reference by hand gets it handled as any object of its kind.
func fromCheckedTemplate(kind Kind, obj client.Object, user string) bool {
	return controlledBy(obj, kind.owners) && systemRequest(user, obj.GetNamespace())
}

// controlledBy reports whether obj's controller owner reference names one of owners ("apiVersion/kind").
func controlledBy(obj client.Object, owners []string) bool {
	for _, o := range obj.GetOwnerReferences() {
		if o.Controller != nil && *o.Controller && slices.Contains(owners, o.APIVersion+"/"+o.Kind) {
			return true
		}
	}
	return false
}

// ownedPod reports whether obj, of a kind with SkipControllerUpdates (a Pod), has a controller owner reference
// naming one of its owners (a handled workload or a controller one creates). Such an object is never
// mutated, whoever creates it, as before Pods were handled: a controller's comes from a template already
// checked, and a team user's is denied in Enforce when it asks for GPUs (forgedPod).
func ownedPod(kind Kind, obj client.Object) bool {
	return kind.SkipControllerUpdates && controlledBy(obj, kind.owners)
}

// forgedPod denies, in an Enforce namespace, a Pod that asks for GPUs and names a workload as its controller
// (see ownedPod) when no controller makes the request (an empty user, offline, trusts the reference): Kueue's
// pod webhook does not gate a Pod whose owner it manages, so such a Pod could not be queued.
func forgedPod(obj client.Object, pol *policy.Policy, user string) error {
	if pol.Mode != policy.Enforce || user == "" || systemRequest(user, obj.GetNamespace()) {
		return nil
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	p, q := findGPU(gjson.GetBytes(raw, "spec"), field.NewPath("spec"), 0)
	if p == nil {
		return nil
	}
	return &Denial{ReasonPolicy, field.ErrorList{field.Forbidden(p, fmt.Sprintf(
		"asks for GPUs (%s) in a namespace whose KaiwoPolicy %q is in Enforce mode, and the Pod's controller owner reference names a workload, which exempts it only when a controller makes the request, not %q: remove the owner reference to have it handled as a Pod",
		q, pol.Name, user))}}
}

// ownedPodEdit holds a team user's UPDATE of a Pod a workload's controller made to the template rules that
// the stored Pod kept: a Pod's resources cannot change, but tolerations can be added to a pending one, which
// a locked tolerations rule forbids. A controller's update passes (Kueue removing its scheduling gate).
func ownedPodEdit(kind Kind, r Review, pol *policy.Policy) error {
	if pol.Mode != policy.Enforce || r.Old == nil || r.User == "" || systemRequest(r.User, r.Object.GetNamespace()) {
		return nil
	}
	w, old, err := adaptUpdate(kind, r)
	if err != nil {
		return err
	}
	if errs := newTemplateErrors(w.templates(), old.templates(), pol); len(errs) > 0 {
		return &Denial{ReasonPolicy, errs}
	}
	return nil
}
