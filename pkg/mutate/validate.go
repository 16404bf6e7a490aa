package mutate

import (
	"fmt"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// Operations, as admissionv1.Operation spells them.
const (
	OpCreate = "CREATE"
	OpUpdate = "UPDATE"
)

// Review is what the validating webhook checks: the final object, after every mutating webhook, and on
// UPDATE the old one.
type Review struct {
	Operation string        // "CREATE" or "UPDATE" (admissionv1.Operation values)
	Kind      Kind          // the object's kind, as the registry's Decode returns it
	Object    client.Object // the new object, decoded with Decode, of Kind's Go type
	Raw       []byte        // its JSON
	Old       client.Object // the old object on UPDATE, else nil
	OldRaw    []byte
	Policy    *policy.Policy // nil means policy.Default()
	User      string         // the requesting user
}

// Validate checks the limits, locks and records of the final object under r.Policy. It returns warnings,
// and a *Denial (Reason policy/limit) naming the field, the value and the rule.
//
// On CREATE every rule applies. On UPDATE a rule applies where what it reads changed (a label, an
// annotation, a pod template), so that a policy tightened later does not lock existing objects against
// their controllers; the GPU limit holds growth; the user label cannot change. An object being deleted
// passes, so that finalizers can be removed. Objects the policy does not manage pass.
func Validate(r Review) ([]string, error) {
	pol := r.Policy
	if pol == nil {
		pol = policy.Default()
	}
	kind := r.Kind
	switch {
	case r.Operation != OpCreate && r.Operation != OpUpdate, r.Object.GetDeletionTimestamp() != nil:
		return nil, nil // DELETE and CONNECT carry no new object; finalizers must be removable
	case r.Operation == OpUpdate && r.Old == nil:
		return nil, fmt.Errorf("an UPDATE needs the old object")
	case kind.partOf(r.Object) != "" || r.Operation == OpUpdate && kind.partOf(r.Old) != "":
		return nil, validatePart(kind, r, pol)
	case r.Operation == OpCreate && fromCheckedTemplate(kind, r.Object, r.User):
		return nil, nil // checked as its owner
	case ownedPod(kind, r.Object):
		// A team user's Pod that claims a workload's controller: Kueue's pod webhook does not gate a Pod
		// whose owner it manages, so it cannot be queued; in Enforce it gets no GPUs. An UPDATE cannot add any.
		if r.Operation == OpCreate {
			return nil, forgedPod(r.Object, pol, r.User)
		}
		return nil, ownedPodEdit(kind, r, pol)
	}
	w, err := kind.adapt(r.Object, r.Raw)
	if err != nil {
		return nil, err
	}
	var old workload
	if r.Operation == OpUpdate {
		if old, err = kind.adapt(r.Old, r.OldRaw); err != nil {
			return nil, fmt.Errorf("the old object: %w", err)
		}
	}
	if errs := checkCreatedAnnotations(w, kind); len(errs) > 0 { // whether or not the object asks for Kaiwo
		return nil, &Denial{ReasonAnnotation, errs}
	}
	if !isManaged(r.Object, w, pol) && (old == nil || !isManaged(r.Old, old, pol)) {
		return nil, nil
	}
	if pol.Err != nil {
		return nil, brokenPolicy(pol)
	}
	opts, errs := annotations.ParseOptions(r.Object.GetAnnotations())
	if len(errs) > 0 {
		return nil, &Denial{ReasonAnnotation, errs}
	}
	var oldObj client.Object
	if old != nil {
		oldObj = r.Old
	}
	if errs := checkUser(r.Object, oldObj, r.User); len(errs) > 0 {
		return nil, &Denial{ReasonPolicy, errs}
	}
	if d := objectRules(kind, r.Object, w, oldObj, old, opts, pol, r.User); d != nil {
		return nil, d
	}
	return policyWarnings(pol), nil
}

// ValidateScale checks a change of the replicas of a kind with a scale subresource (KindInfo.Scale: a
// Deployment): obj is the current object, of kind's Go type, replicas the requested count. Growth is held
// to limits.maxGpusPerWorkload and limits.maxStoragePerWorkload.
func ValidateScale(kind Kind, obj client.Object, replicas int32, pol *policy.Policy) error {
	if pol == nil {
		pol = policy.Default()
	}
	if !kind.Scale {
		return &Denial{ReasonUnsupported, field.ErrorList{field.NotSupported(field.NewPath("kind"), kind.String(), []string{"a kind with a scale subresource"})}}
	}
	if replicas < 0 {
		return &Denial{ReasonLimit, field.ErrorList{field.Invalid(field.NewPath("spec", "replicas"), replicas, "must be >= 0")}}
	}
	cur, err := kind.adapt(obj, nil)
	if err != nil {
		return err
	}
	if !isManaged(obj, cur, pol) || obj.GetDeletionTimestamp() != nil {
		return nil
	}
	scaled := obj.DeepCopyObject().(client.Object)
	w, err := kind.adapt(scaled, nil)
	if err != nil {
		return err
	}
	w.(scaler).setReplicas(replicas) // NewRegistry checked that a Scale kind's adapter scales
	if d := workloadLimits(w, cur, pol, nil); d != nil {
		return d
	}
	return nil
}

// checkUser: on CREATE the user label is the requesting user, made label-safe (an empty user, offline
// without --user, is not checked); on UPDATE it stays what it was, and where it was not set it may only
// be set to the requesting user.
func checkUser(obj, old client.Object, user string) field.ErrorList {
	p := labelsPath.Key(annotations.User)
	got := obj.GetLabels()[annotations.User]
	want := LabelSafe(user)
	if old != nil {
		if was := old.GetLabels()[annotations.User]; was != "" {
			if got != was {
				return field.ErrorList{field.Invalid(p, got, fmt.Sprintf("is immutable: it records %q, the user who created the object, and cannot be changed or removed", was))}
			}
			return nil
		}
		if got == "" {
			return nil
		}
	}
	if want != "" && got != want {
		return field.ErrorList{field.Invalid(p, got, fmt.Sprintf("must be the requesting user %q, made label-safe: the record of who created the object cannot name another user", want))}
	}
	return nil
}

func labelChanged(old, obj client.Object, key string) bool {
	a, aok := old.GetLabels()[key]
	b, bok := obj.GetLabels()[key]
	return a != b || aok != bok
}

// changedTemplates are the templates of ts that differ from the template at the same place in old.
func changedTemplates(ts, old []template) []template {
	var out []template
	for i, t := range ts {
		if i < len(old) && old[i].key() == t.key() && apiequality.Semantic.DeepEqual(old[i].spec, t.spec) {
			continue
		}
		out = append(out, t)
	}
	return out
}

// suspender is a workload that Kueue holds suspended until it admits it.
type suspender interface{ suspended() bool }

func suspended(w workload) bool {
	s, ok := w.(suspender)
	return ok && s.suspended()
}

func brokenPolicy(pol *policy.Policy) *Denial {
	return &Denial{ReasonPolicy, field.ErrorList{field.InternalError(field.NewPath("metadata", "namespace"),
		fmt.Errorf("the namespace's policy cannot be applied until an admin fixes it: %w", pol.Err))}}
}

// policyWarnings are the effective policy's warnings (equal priorities, fail-open parts), for admission.
func policyWarnings(pol *policy.Policy) []string {
	var out []string
	for _, w := range pol.Warnings {
		out = append(out, "kaiwo: policy: "+w)
	}
	return out
}
