package mutate

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// kueueRuled is a workload with fields Kueue refuses while it is queued (autoscaling, too many pod sets):
// the mutation denies them when it queues the workload, and the rules deny them in any queued object.
type kueueRuled interface{ kueueRules() field.ErrorList }

// kueueErrors are the Kueue rules of w when obj carries a queue label (Kueue queues it, and refuses them).
func kueueErrors(obj client.Object, w workload) field.ErrorList {
	k, ok := w.(kueueRuled)
	if _, queued := obj.GetLabels()[annotations.KueueQueueName]; !ok || !queued {
		return nil
	}
	return k.kueueRules()
}

// A part is an object of a handled kind that a workload of one of the kind's PartOf kinds controls: the
// RayCluster a RayJob or RayService runs, the Jobs a JobSet runs. A part was checked as its workload, and
// its controller creates it from that workload's spec. So the mutation leaves a part as it is (Kueue queues
// the workload, not its parts), and validation holds it to the rules of controlled objects: a controller's
// request passes (a service account of another namespace, or a system: user that is not a service account
// or anonymous); in an Enforce namespace, a team user who writes the owner reference by hand, adds or
// removes it, gets no GPUs, and a team user's later edit of a part may not grow it past the policy's limits
// nor break a template rule the stored part kept.

// partOf is the workload obj is a part of ("apiVersion/Kind" of its controller owner reference), or "".
func (k Kind) partOf(obj client.Object) string {
	if obj == nil {
		return ""
	}
	for _, o := range obj.GetOwnerReferences() {
		if o.Controller == nil || !*o.Controller {
			continue
		}
		for _, p := range k.PartOf {
			if o.APIVersion+"/"+o.Kind == p {
				return p
			}
		}
	}
	return ""
}

// validatePart checks an object that is, or on UPDATE was, a part of another workload. A part is made by its
// workload's controller; in an Enforce namespace a team user may not make one (write the owner reference on
// CREATE, or add or remove it on UPDATE), GPUs or not: such a part would never have been checked as its
// workload, and a later edit of it is held only to the rules of controlled objects. A team user's edit of a
// part its controller made is held to those: no growth past the limits, no template rule the stored part
// kept broken, and no move to a queue the policy does not allow.
func validatePart(k Kind, r Review, pol *policy.Policy) error {
	if pol.Mode != policy.Enforce || systemRequest(r.User, r.Object.GetNamespace()) {
		return nil
	}
	owner, wasPart := k.partOf(r.Object), r.Operation == OpUpdate && k.partOf(r.Old) != ""
	if owner == "" || !wasPart {
		w, err := k.adapt(r.Object, r.Raw)
		if err != nil {
			return err
		}
		asks := "no GPUs"
		if c, ferr := countGPUs(w); ferr != nil || c.total > 0 || claimsDevices(w.templates()) {
			asks = "GPUs (" + describeCount(c, ferr) + ")"
		}
		if owner == "" {
			owner = k.partOf(r.Old)
		}
		if i := strings.LastIndex(owner, "/"); i > 0 {
			owner = owner[:i] + " " + owner[i+1:] // as messages name kinds: ray.io/v1 RayJob
		}
		msg := fmt.Sprintf("this %s is a part of a %s (its controller owner reference) and asks for %s in a namespace whose KaiwoPolicy %q is in Enforce mode; Kaiwo checks a part when its %s is created, and the owner reference exempts it only when a controller makes the request, not %q: create the %s instead",
			k, owner, asks, pol.Name, owner, r.User, owner)
		return &Denial{ReasonPolicy, field.ErrorList{field.Forbidden(field.NewPath("metadata", "ownerReferences"), msg)}}
	}
	w, old, err := adaptUpdate(k, r)
	if err != nil {
		return err
	}
	var errs field.ErrorList
	if labelChanged(r.Old, r.Object, annotations.KueueQueueName) {
		q, has := r.Object.GetLabels()[annotations.KueueQueueName]
		errs = checkLabelQueues(r.Object.GetLabels(), field.NewPath("metadata", "labels"), q, has, pol)
	}
	if errs = append(errs, checkTemplateQueues(changedTemplates(w.templates(), old.templates()), r.Object, pol)...); len(errs) > 0 {
		return &Denial{ReasonPolicy, errs}
	}
	return controlledEdit(w, old, pol)
}

// adaptUpdate adapts an UPDATE's object and its old object.
func adaptUpdate(k Kind, r Review) (w, old workload, err error) {
	if w, err = k.adapt(r.Object, r.Raw); err != nil {
		return nil, nil, err
	}
	if old, err = k.adapt(r.Old, r.OldRaw); err != nil {
		return nil, nil, fmt.Errorf("the old object: %w", err)
	}
	return w, old, nil
}

// describeCount says what a part asks for, for the message.
func describeCount(c count, err *field.Error) string {
	switch {
	case err != nil:
		return err.Error()
	case c.total == 0:
		return "devices claimed through dynamic resource allocation"
	}
	return fmt.Sprintf("%d GPUs: %s", c.total, c.describe())
}
