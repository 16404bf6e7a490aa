package mutate

import (
	"fmt"
	"strings"

	"github.com/tidwall/gjson"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	sjson "sigs.k8s.io/json"

	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// podSource is what the limits count: pod templates and, for each, the most pods of it that run at once.
type podSource interface {
	templates() []template
	pods() []pods
}

// controlledSet is a ReplicaSet that a Deployment controls: spec.template, spec.replicas pods (default 1).
type controlledSet struct {
	template *corev1.PodTemplateSpec
	replicas *int32
}

func (r controlledSet) templates() []template {
	return []template{{path: field.NewPath("spec", "template"), spec: r.template}}
}

func (r controlledSet) pods() []pods { return replicaPods(r.replicas) }

// ValidateUnhandledUpdate is ValidateUnhandled for an UPDATE: raw is the new object, oldRaw the stored one,
// user the requesting user. An object that a handled workload controls was checked as that workload when its
// controller created it; a later edit of it by a team user is held to the same rules, since its controller
// may never undo it: in an Enforce namespace, a ReplicaSet's GPUs and ephemeral storage may not grow past limits.maxGpusPerWorkload and
// limits.maxStoragePerWorkload, and a pod template it changes may not break a rule about vendors, Secrets
// or the locked scheduling fields that the stored template kept. Controllers pass: service accounts of
// another namespace and the system's own users (the Deployment controller), which act for a
// workload already checked, or orphan the object (the garbage collector); a team user is neither. An object
// that the update makes controlled is checked as ValidateUnhandledBy checks a new one.
func (r *Registry) ValidateUnhandledUpdate(raw, oldRaw []byte, pol *policy.Policy, user string) error {
	if pol == nil {
		pol = policy.Default()
	}
	if pol.Mode != policy.Enforce {
		return nil
	}
	doc := gjson.ParseBytes(raw)
	if !doc.IsObject() {
		return fmt.Errorf("decoding object: want a JSON object")
	}
	if doc.Get("metadata.deletionTimestamp").Exists() || systemRequest(user, doc.Get("metadata.namespace").String()) {
		return nil // a controller's update, such as the garbage collector's that orphans the object
	}
	if !r.controlledByHandled(gjson.ParseBytes(oldRaw)) {
		// An owner reference added by this update is the object's word, as on CREATE.
		return r.ValidateUnhandledBy(raw, pol, user)
	}
	if err := r.ValidateUnhandled(raw, pol); err != nil {
		return err
	}
	u, ok := r.unhandledOf(doc)
	if !ok || u.controlled == nil {
		return nil // a Pod's resources cannot grow; other kinds are not created by a handled workload
	}
	w, err := u.controlled(raw)
	if err != nil {
		return fmt.Errorf("decoding object: %w", err)
	}
	old, err := u.controlled(oldRaw)
	if err != nil {
		return fmt.Errorf("decoding the old object: %w", err)
	}
	return controlledEdit(w, old, pol)
}

// controlledEdit holds a team user's edit of a controlled object to its workload's rules: no template rule
// broken that the stored template kept, no growth past the limits.
func controlledEdit(w, old podSource, pol *policy.Policy) error {
	if errs := newTemplateErrors(w.templates(), old.templates(), pol); len(errs) > 0 {
		return &Denial{ReasonPolicy, errs}
	}
	if d := workloadLimits(w, old, pol, nil); d != nil {
		return d
	}
	return nil
}

// controlledReplicaSetOf reads a ReplicaSet that a Deployment controls.
func controlledReplicaSetOf(raw []byte) (podSource, error) {
	var rs appsv1.ReplicaSet
	err := sjson.UnmarshalCaseSensitivePreserveInts(raw, &rs)
	return controlledSet{&rs.Spec.Template, rs.Spec.Replicas}, err
}

// newTemplateErrors are the template rules' errors of the changed templates of ts that the template at the
// same place in old did not have: the controller copied the stored template from a checked workload, with
// what Kaiwo placed there (a gpu-model affinity, say), so only what the edit breaks is denied.
func newTemplateErrors(ts, old []template, pol *policy.Policy) field.ErrorList {
	var errs field.ErrorList
	lt := newLockedTemplate(pol, nil)
	for _, t := range changedTemplates(ts, old) {
		had := map[string]bool{}
		for _, o := range old {
			if o.key() == t.key() {
				for _, e := range templateRules([]template{o}, pol, lt) {
					had[e.Error()] = true
				}
			}
		}
		for _, e := range templateRules([]template{t}, pol, lt) {
			if !had[e.Error()] {
				errs = append(errs, e)
			}
		}
	}
	return errs
}

// systemRequest reports whether user is a controller rather than a team user: a service account of another
// namespace than ns, or one of the system's own users (system:kube-controller-manager, system:admin), whose
// names no team user can hold.
func systemRequest(user, ns string) bool {
	if controllerOutside(user, ns) {
		return true
	}
	return strings.HasPrefix(user, "system:") && !strings.HasPrefix(user, "system:serviceaccount:") && !strings.HasPrefix(user, "system:anonymous")
}
