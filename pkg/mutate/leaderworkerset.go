package mutate

import (
	"fmt"
	"maps"
	"math"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	lwsv1 "sigs.k8s.io/lws/api/leaderworkerset/v1"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
)

// leaderWorkerSet adapts a leaderworkerset.x-k8s.io/v1 LeaderWorkerSet: an optional leader template and a
// worker template; spec.replicas groups of spec.leaderWorkerTemplate.size pods each (the leader is one of
// them). GPUs are per group, planned over its pods; serving by default, as a Deployment.
type leaderWorkerSet lwsv1.LeaderWorkerSet

var (
	_ workload = (*leaderWorkerSet)(nil)
	_ scaler   = (*leaderWorkerSet)(nil)
)

// leaderWorkerSetKind registers leaderworkerset.x-k8s.io/v1 LeaderWorkerSets: a serving kind, mutated on
// CREATE and UPDATE, with a scale subresource (spec.replicas, the groups).
type leaderWorkerSetKind struct{}

func (leaderWorkerSetKind) Info() KindInfo {
	return KindInfo{GVK: lwsv1.GroupVersion.WithKind("LeaderWorkerSet"), Resource: "leaderworkersets",
		Serving: true, Update: true, Scale: true,
		Templates: []string{"spec.leaderWorkerTemplate.leaderTemplate", "spec.leaderWorkerTemplate.workerTemplate"}}
}

func (leaderWorkerSetKind) New() client.Object { return &lwsv1.LeaderWorkerSet{} }

func (leaderWorkerSetKind) adapt(o client.Object, _ []byte) (workload, error) {
	l, err := as[*lwsv1.LeaderWorkerSet](o)
	return (*leaderWorkerSet)(l), err
}

var (
	lwsTemplates = field.NewPath("spec", "leaderWorkerTemplate")
)

// kueueLWSFramework is the value Kueue's LeaderWorkerSet webhook gives the pod-suspending-parent annotation.
const kueueLWSFramework = "leaderworkerset.x-k8s.io/leaderworkerset"

func (l *leaderWorkerSet) object() client.Object { return (*lwsv1.LeaderWorkerSet)(l) }

func (l *leaderWorkerSet) leader() *template {
	if t := l.Spec.LeaderWorkerTemplate.LeaderTemplate; t != nil {
		return &template{path: lwsTemplates.Child("leaderTemplate"), spec: t}
	}
	return nil
}

func (l *leaderWorkerSet) worker() template {
	return template{path: lwsTemplates.Child("workerTemplate"), spec: &l.Spec.LeaderWorkerTemplate.WorkerTemplate}
}

func (l *leaderWorkerSet) templates() []template {
	var ts []template
	if t := l.leader(); t != nil {
		ts = append(ts, *t)
	}
	return append(ts, l.worker())
}

// pods: spec.replicas groups (default 1) of size pods (default 1): one leader and size-1 workers with a
// leader template, else size pods of the worker template. The groups a rolling update adds for a moment
// (maxSurge) are not counted, as for a Deployment.
func (l *leaderWorkerSet) pods() []pods {
	groups := max(int64(ptr.Deref(l.Spec.Replicas, 1)), 0)
	size := max(int64(ptr.Deref(l.Spec.LeaderWorkerTemplate.Size, 1)), 0)
	why := fmt.Sprintf("spec.replicas=%d x %s=%d", groups, lwsTemplates.Child("size"), size)
	if l.leader() == nil {
		return []pods{{groups * size, why}} // both fit an int32
	}
	workers := max(size-1, 0)
	return []pods{
		{groups, fmt.Sprintf("spec.replicas=%d leaders", groups)},
		{groups * workers, fmt.Sprintf("spec.replicas=%d x (%s=%d - 1 leader)", groups, lwsTemplates.Child("size"), size)},
	}
}

func (l *leaderWorkerSet) check() field.ErrorList { return nil }

// plan places s.gpus over the pods of one group: NUM_REPLICAS is the group's size, and the leader gets
// the workers' GPUs too.
func (l *leaderWorkerSet) plan(s *settings) (plan, field.ErrorList) {
	p, n, errs := planGroup(s, l.leader(), l.worker(), ptr.Deref(l.Spec.LeaderWorkerTemplate.Size, 1))
	if len(errs) > 0 || n == 0 {
		return p, errs
	}
	if ptr.Deref(l.Spec.LeaderWorkerTemplate.Size, 1) != n {
		l.Spec.LeaderWorkerTemplate.Size = ptr.To(n)
		p.notes = append(p.notes, fmt.Sprintf("%s set to %d pods per group", lwsTemplates.Child("size"), n))
	}
	return p, nil
}

// queue sets on the pod templates what Kueue's LeaderWorkerSet webhook sets on a queued LeaderWorkerSet, so
// that its pods are queued as serving pod groups whichever webhook runs first: the pod-suspending-parent and
// pod-group-serving annotations, and the priority class label.
func (l *leaderWorkerSet) queue(s *settings) ([]string, field.ErrorList) {
	changed := false
	for _, t := range l.templates() {
		a := map[string]string{annotations.KueuePodSuspendingParent: kueueLWSFramework, annotations.KueuePodGroupServing: "true"}
		changed = setTemplateAnnotations(t.spec, a) || changed
		if s.priorityClass != "" {
			changed = setObjectLabels(&t.spec.ObjectMeta, map[string]string{annotations.KueuePriorityClass: s.priorityClass}) || changed
		}
	}
	if changed {
		return []string{"Kueue's serving pod-group annotations on the pod templates"}, nil
	}
	return nil, nil
}

// setReplicas sets the number of groups, as the scale subresource does.
func (l *leaderWorkerSet) setReplicas(n int32) { l.Spec.Replicas = &n }

func setTemplateAnnotations(t *corev1.PodTemplateSpec, a map[string]string) bool {
	changed := false
	for _, k := range slices.Sorted(maps.Keys(a)) {
		if t.Annotations[k] != a[k] {
			if t.Annotations == nil {
				t.Annotations = map[string]string{}
			}
			t.Annotations[k] = a[k]
			changed = true
		}
	}
	return changed
}

// planGroup plans s.gpus over the pods of a group with the Ray planner: every pod, the leader's (when there
// is a leader template) and the workers', gets the same GPUs. It returns the plan and the pods of the
// group it planned, or 0 when nothing was asked (the plan then describes the cur pods the group has).
func planGroup(s *settings, leader *template, worker template, cur int32) (plan, int32, field.ErrorList) {
	perTemplate, _ := templateGPUs(worker.spec)
	if perTemplate < 0 || perTemplate > math.MaxInt32 {
		return plan{}, 0, field.ErrorList{field.Invalid(worker.path.Child("spec", "containers"), perTemplate, "GPUs per pod must be from 0 to 2147483647")}
	}
	n, per, note, err := workerShape(s, annotationsPath, int32(perTemplate), worker.path)
	if err != nil {
		return plan{}, 0, field.ErrorList{err}
	}
	if n == 0 {
		return plan{replicas: max(cur, 0), perReplica: int32(perTemplate)}, 0, nil
	}
	p := plan{replicas: n, perReplica: per}
	if per > 0 {
		p.target = &worker
		if leader != nil {
			p.also = []template{*leader}
		}
	}
	if note != "" {
		p.notes = append(p.notes, note)
	}
	return p, n, nil
}
