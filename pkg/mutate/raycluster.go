package mutate

import (
	"fmt"

	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
)

// rayCluster adapts a ray.io/v1 RayCluster that stands alone (an interactive cluster): head and worker
// group templates; GPUs planned over workers, as for a RayJob, whose rayClusterSpec is the same type.
// A RayCluster that a RayJob or RayService controls is part of that workload (see parts.go).
type rayCluster rayv1.RayCluster

var (
	_ workload   = (*rayCluster)(nil)
	_ kueueRuled = (*rayCluster)(nil)
)

// rayClusterKind registers ray.io/v1 RayClusters: mutated on CREATE (KubeRay does not resize a running cluster
// from its spec); the one a RayJob or RayService controls is a part of it.
type rayClusterKind struct{}

func (rayClusterKind) Info() KindInfo {
	return KindInfo{GVK: rayv1.GroupVersion.WithKind("RayCluster"), Resource: "rayclusters",
		Templates: []string{"spec.headGroupSpec.template", "spec.workerGroupSpecs[].template"},
		PartOf:    []string{"ray.io/v1/RayJob", "ray.io/v1/RayService"}}
}

func (rayClusterKind) New() client.Object { return &rayv1.RayCluster{} }

func (rayClusterKind) adapt(o client.Object, _ []byte) (workload, error) {
	c, err := as[*rayv1.RayCluster](o)
	return (*rayCluster)(c), err
}

// rayClusterSpec is where a RayCluster keeps its cluster spec.
var rayClusterSpec = field.NewPath("spec")

// maxRayWorkerGroups is the most worker groups Kueue queues: a Workload has at most 8 pod sets, one the head's.
const maxRayWorkerGroups = 7

func (r *rayCluster) object() client.Object { return (*rayv1.RayCluster)(r) }

func (r *rayCluster) templates() []template { return clusterTemplates(&r.Spec, rayClusterSpec) }

func (r *rayCluster) pods() []pods { return rayPods(&r.Spec, rayClusterSpec) }

func (r *rayCluster) check() field.ErrorList { return nil }

func (r *rayCluster) plan(s *settings) (plan, field.ErrorList) {
	return planRay(&r.Spec, rayClusterSpec, s)
}

// queue suspends the cluster until Kueue admits it and turns the in-tree autoscaler off where it is unset;
// what Kueue refuses of a queued RayCluster is denied with the reason.
func (r *rayCluster) queue(s *settings) ([]string, field.ErrorList) {
	if errs := r.kueueRules(); len(errs) > 0 {
		return nil, errs
	}
	var notes []string
	if !ptr.Deref(r.Spec.Suspend, false) {
		r.Spec.Suspend = ptr.To(true)
		notes = append(notes, "spec.suspend=true until Kueue admits it")
	}
	n, errs := noAutoscaling(&r.Spec, rayClusterSpec)
	return append(notes, n...), errs
}

// kueueRules are what Kueue's raycluster webhook refuses of a queued RayCluster: the in-tree autoscaler
// (Kueue admits a fixed size), more than 7 worker groups (a Workload has 8 pod sets, one the head's), and a
// worker group named "head" (the head's pod set).
func (r *rayCluster) kueueRules() field.ErrorList {
	var errs field.ErrorList
	if ptr.Deref(r.Spec.EnableInTreeAutoscaling, false) {
		errs = append(errs, field.Invalid(rayClusterSpec.Child("enableInTreeAutoscaling"), true,
			"must be false for a queued RayCluster: Kueue admits a fixed size and forbids the autoscaler (or set "+annotations.Queueing+": none)"))
	}
	if n := len(r.Spec.WorkerGroupSpecs); n > maxRayWorkerGroups {
		errs = append(errs, field.TooMany(rayClusterSpec.Child("workerGroupSpecs"), n, maxRayWorkerGroups))
	}
	for i, g := range r.Spec.WorkerGroupSpecs {
		if g.GroupName == "head" {
			errs = append(errs, field.Invalid(rayClusterSpec.Child("workerGroupSpecs").Index(i).Child("groupName"), g.GroupName,
				fmt.Sprintf("must not be %q in a queued RayCluster: Kueue names the head's pod set so", g.GroupName)))
		}
	}
	return errs
}

func (r *rayCluster) suspended() bool { return ptr.Deref(r.Spec.Suspend, false) }
