package mutate

import (
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// statefulSet adapts an apps/v1 StatefulSet: one pod template, GPUs per pod, not queued unless asked, as a
// Deployment. Kueue's statefulset integration queues its pods as one pod group.
type statefulSet appsv1.StatefulSet

var (
	_ workload = (*statefulSet)(nil)
	_ scaler   = (*statefulSet)(nil)
)

// statefulSetKind registers apps/v1 StatefulSets: a serving kind, mutated on CREATE and UPDATE, with a
// scale subresource.
type statefulSetKind struct{}

func (statefulSetKind) Info() KindInfo {
	return KindInfo{GVK: appsv1.SchemeGroupVersion.WithKind("StatefulSet"), Resource: "statefulsets",
		Serving: true, Update: true, Scale: true, Templates: []string{"spec.template"},
		// A LeaderWorkerSet runs its leaders as a StatefulSet, and each leader Pod its group's workers.
		PartOf: []string{"leaderworkerset.x-k8s.io/v1/LeaderWorkerSet", "v1/Pod"}}
}

func (statefulSetKind) New() client.Object { return &appsv1.StatefulSet{} }

func (statefulSetKind) adapt(o client.Object, _ []byte) (workload, error) {
	d, err := as[*appsv1.StatefulSet](o)
	return (*statefulSet)(d), err
}

func (d *statefulSet) object() client.Object { return (*appsv1.StatefulSet)(d) }

func (d *statefulSet) templates() []template {
	return []template{{path: field.NewPath("spec", "template"), spec: &d.Spec.Template}}
}

// pods: spec.replicas (default 1); a StatefulSet never runs more pods than that.
func (d *statefulSet) pods() []pods { return replicaPods(d.Spec.Replicas) }

func (d *statefulSet) check() field.ErrorList { return nil }

func (d *statefulSet) plan(s *settings) (plan, field.ErrorList) {
	return podPlan(d.templates()[0], s)
}

// queue puts the queue labels on the pod template too, as Kueue's own StatefulSet webhook does.
func (d *statefulSet) queue(s *settings) ([]string, field.ErrorList) {
	return templateQueue(&d.Spec.Template, s)
}

func (d *statefulSet) setReplicas(n int32) { d.Spec.Replicas = &n }
