package mutate

import (
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// pod adapts a v1 Pod that no workload controls: the pod itself is its one template (at the nil path:
// its fields are at the top of the object), GPUs per pod. Queued by default as a Job: the queue label on
// the Pod, which Kueue's pod integration, where it is enabled for the namespace, gates until it admits it.
// A Pod that a handled workload's controller creates is left alone (see fromCheckedTemplate).
type pod corev1.Pod

// kueueAdmissionGate is the scheduling gate Kueue's pod webhook puts on a Pod it queues.
const kueueAdmissionGate = "kueue.x-k8s.io/admission"

var _ workload = (*pod)(nil)

// podKind registers v1 Pods: mutated on CREATE only (a Pod's spec is immutable), and a Pod a workload
// controls is checked on CREATE only. Its one template is the Pod itself, "" in Templates.
type podKind struct{}

func (podKind) Info() KindInfo {
	return KindInfo{GVK: corev1.SchemeGroupVersion.WithKind("Pod"), Resource: "pods", Templates: []string{""},
		SkipControllerUpdates: true}
}

func (podKind) New() client.Object { return &corev1.Pod{} }

func (podKind) adapt(o client.Object, _ []byte) (workload, error) {
	p, err := as[*corev1.Pod](o)
	return (*pod)(p), err
}

// A Pod's metadata and spec, in this order, are laid out as a PodTemplateSpec's; podTemplate relies on it.
func init() {
	var p corev1.Pod
	var t corev1.PodTemplateSpec
	if unsafe.Offsetof(p.Spec)-unsafe.Offsetof(p.ObjectMeta) != unsafe.Offsetof(t.Spec) ||
		unsafe.Sizeof(p.ObjectMeta) != unsafe.Sizeof(t.ObjectMeta) {
		panic("mutate: a Pod's metadata and spec are no longer laid out as a PodTemplateSpec")
	}
}

// podTemplate views a Pod's metadata and spec as a pod template: changes through it change the Pod.
func podTemplate(p *corev1.Pod) *corev1.PodTemplateSpec {
	return (*corev1.PodTemplateSpec)(unsafe.Pointer(&p.ObjectMeta))
}

func (p *pod) object() client.Object { return (*corev1.Pod)(p) }

func (p *pod) templates() []template {
	return []template{{path: nil, spec: podTemplate((*corev1.Pod)(p))}}
}

func (p *pod) pods() []pods { return []pods{onePod()} }

func (p *pod) check() field.ErrorList { return nil }

func (p *pod) plan(s *settings) (plan, field.ErrorList) {
	return podPlan(p.templates()[0], s)
}

// queue: the queue labels on the Pod (set by the mutation for every kind) are what Kueue's pod webhook
// reads; it adds the scheduling gate itself, where its pod integration manages the namespace. Kaiwo adds
// no gate: in a namespace Kueue does not manage, nothing would ever remove it.
func (p *pod) queue(*settings) ([]string, field.ErrorList) { return nil, nil }

// suspended: Kueue's admission gate holds the Pod.
func (p *pod) suspended() bool {
	for _, g := range p.Spec.SchedulingGates {
		if g.Name == kueueAdmissionGate {
			return true
		}
	}
	return false
}

// name is how messages name t: its path, or "the Pod" for a Pod's own spec.
func (t template) name() string {
	if t.path == nil {
		return "the Pod"
	}
	return t.path.String()
}

// key is t's key in the record of what Kaiwo placed: its path, or "." for a Pod's own spec.
func (t template) key() string {
	if t.path == nil {
		return "."
	}
	return t.path.String()
}

// at is the path of errors about t as a whole: its path, or spec for a Pod's own spec.
func (t template) at() *field.Path {
	if t.path == nil {
		return field.NewPath("spec")
	}
	return t.path
}

// apiServerToleration reports a toleration that the API server's DefaultTolerationSeconds admission plugin
// puts on every Pod before any webhook sees it: node.kubernetes.io/not-ready or unreachable, Exists,
// NoExecute, for a bounded time. Locked tolerations allow it: no team user put it there.
func apiServerToleration(t corev1.Toleration) bool {
	return (t.Key == "node.kubernetes.io/not-ready" || t.Key == "node.kubernetes.io/unreachable") &&
		t.Operator == corev1.TolerationOpExists && t.Effect == corev1.TaintEffectNoExecute && t.TolerationSeconds != nil
}
