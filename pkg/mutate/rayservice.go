package mutate

import (
	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// rayService adapts a ray.io/v1 RayService: head and worker group templates; GPUs planned over workers.
type rayService rayv1.RayService

var _ workload = (*rayService)(nil)

// rayServiceCluster is where a RayService keeps its cluster spec.
var rayServiceCluster = field.NewPath("spec", "rayClusterConfig")

// rayServiceKind registers ray.io/v1 RayServices: a serving kind, mutated on CREATE and UPDATE.
type rayServiceKind struct{}

func (rayServiceKind) Info() KindInfo {
	return KindInfo{GVK: rayv1.GroupVersion.WithKind("RayService"), Resource: "rayservices", Serving: true, Update: true,
		Templates: []string{
			"spec.rayClusterConfig.headGroupSpec.template",
			"spec.rayClusterConfig.workerGroupSpecs[].template",
		}}
}

func (rayServiceKind) New() client.Object { return &rayv1.RayService{} }

func (rayServiceKind) adapt(o client.Object, _ []byte) (workload, error) {
	r, err := as[*rayv1.RayService](o)
	return (*rayService)(r), err
}

func (r *rayService) object() client.Object { return (*rayv1.RayService)(r) }

func (r *rayService) templates() []template {
	return clusterTemplates(&r.Spec.RayClusterSpec, rayServiceCluster)
}

func (r *rayService) pods() []pods { return rayPods(&r.Spec.RayClusterSpec, rayServiceCluster) }

func (r *rayService) check() field.ErrorList { return nil }

func (r *rayService) plan(s *settings) (plan, field.ErrorList) {
	return planRay(&r.Spec.RayClusterSpec, rayServiceCluster, s)
}

func (r *rayService) queue(s *settings) ([]string, field.ErrorList) {
	var notes []string
	if !ptr.Deref(r.Spec.RayClusterSpec.Suspend, false) {
		r.Spec.RayClusterSpec.Suspend = ptr.To(true)
		notes = append(notes, "spec.rayClusterConfig.suspend=true until Kueue admits it")
	}
	n, errs := noAutoscaling(&r.Spec.RayClusterSpec, rayServiceCluster)
	return append(notes, n...), errs
}

func (r *rayService) suspended() bool { return ptr.Deref(r.Spec.RayClusterSpec.Suspend, false) }
