package mutate

import (
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
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

// partOwners are, per handled kind, the controllers whose objects of that kind are a part of another
// handled workload: the RayCluster a RayJob or RayService runs, the Jobs a JobSet runs. A part was checked
// as its workload; its controller creates it from that workload's spec. So the mutation leaves a part as
// it is (Kueue queues the workload, not its parts), and validation holds it to the rules of controlled
// objects (ValidateUnhandledBy, ValidateUnhandledUpdate): a controller's request passes; a team user who
// writes the owner reference by hand gets no GPUs in an Enforce namespace; a team user's later edit may not
// grow it past the policy's limits.
var partOwners = map[string]map[string]bool{
	"ray.io/v1 RayCluster": {"ray.io/v1 RayJob": true, "ray.io/v1 RayService": true},
	"batch/v1 Job":         {"jobset.x-k8s.io/v1alpha2 JobSet": true},
}

// partOf is the workload obj is a part of ("apiVersion Kind" of its controller owner reference), or "".
func partOf(obj client.Object) string {
	gvk := obj.GetObjectKind().GroupVersionKind()
	owners := partOwners[gvk.GroupVersion().String()+" "+gvk.Kind]
	if owners == nil {
		if k, ok := KindOf(obj); ok { // a typed object built without its TypeMeta
			owners = partOwners[k.GVK.GroupVersion().String()+" "+k.GVK.Kind]
		}
	}
	for _, o := range obj.GetOwnerReferences() {
		if o.Controller != nil && *o.Controller && owners[o.APIVersion+" "+o.Kind] {
			return o.APIVersion + " " + o.Kind
		}
	}
	return ""
}

// validatePart checks an object that is, or on UPDATE was, a part of another workload, as controlled
// objects are checked.
func validatePart(r Review) error {
	raw, oldRaw := r.Raw, r.OldRaw
	var err error
	if len(raw) == 0 {
		if raw, err = json.Marshal(r.Object); err != nil {
			return fmt.Errorf("encoding object: %w", err)
		}
	}
	if r.Operation == OpUpdate {
		if len(oldRaw) == 0 {
			if oldRaw, err = json.Marshal(r.Old); err != nil {
				return fmt.Errorf("encoding the old object: %w", err)
			}
		}
		return ValidateUnhandledUpdate(raw, oldRaw, r.Policy, r.User)
	}
	return ValidateUnhandledBy(raw, r.Policy, r.User)
}
