package mutate

import (
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// deployment adapts an apps/v1 Deployment: one pod template, GPUs per pod; Kueue manages its pods.
type deployment appsv1.Deployment

var (
	_ workload = (*deployment)(nil)
	_ scaler   = (*deployment)(nil)
)

// deploymentKind registers apps/v1 Deployments: a serving kind, mutated on CREATE and UPDATE, with a
// scale subresource.
type deploymentKind struct{}

func (deploymentKind) Info() KindInfo {
	return KindInfo{GVK: appsv1.SchemeGroupVersion.WithKind("Deployment"), Resource: "deployments",
		Serving: true, Update: true, Scale: true, Templates: []string{"spec.template"}}
}

func (deploymentKind) New() client.Object { return &appsv1.Deployment{} }

func (deploymentKind) adapt(o client.Object, _ []byte) (workload, error) {
	d, err := as[*appsv1.Deployment](o)
	return (*deployment)(d), err
}

func (d *deployment) object() client.Object { return (*appsv1.Deployment)(d) }

func (d *deployment) templates() []template {
	return []template{{path: field.NewPath("spec", "template"), spec: &d.Spec.Template}}
}

// pods: spec.replicas (default 1). The pods a rolling update adds for a moment (maxSurge) are not counted.
func (d *deployment) pods() []pods { return replicaPods(d.Spec.Replicas) }

func (d *deployment) setReplicas(n int32) { d.Spec.Replicas = &n }

func (d *deployment) check() field.ErrorList { return nil }

func (d *deployment) plan(s *settings) (plan, field.ErrorList) {
	return podPlan(d.templates()[0], s)
}

// queue puts the queue labels on the pod template too, as Kueue's own Deployment webhook does,
// so the pods are queued whichever webhook runs first.
func (d *deployment) queue(s *settings) ([]string, field.ErrorList) {
	return templateQueue(&d.Spec.Template, s)
}
