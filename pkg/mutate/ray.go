package mutate

import (
	"fmt"
	"slices"

	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
)

func clusterTemplates(c *rayv1.RayClusterSpec, clusterPath *field.Path) []template {
	if c == nil {
		return nil
	}
	ts := []template{{path: clusterPath.Child("headGroupSpec", "template"), spec: &c.HeadGroupSpec.Template}}
	for i := range c.WorkerGroupSpecs {
		ts = append(ts, template{path: clusterPath.Child("workerGroupSpecs").Index(i).Child("template"), spec: &c.WorkerGroupSpecs[i].Template})
	}
	return ts
}

func checkCluster(c *rayv1.RayClusterSpec, clusterPath *field.Path) field.ErrorList {
	if c == nil {
		return field.ErrorList{field.Required(clusterPath, "Kaiwo plans the Ray cluster from rayClusterSpec")}
	}
	return nil
}

// noAutoscaling turns KubeRay's in-tree autoscaler off, as Kueue requires for a queued cluster.
func noAutoscaling(c *rayv1.RayClusterSpec, clusterPath *field.Path) ([]string, field.ErrorList) {
	switch {
	case c.EnableInTreeAutoscaling == nil:
		c.EnableInTreeAutoscaling = ptr.To(false)
		return []string{"enableInTreeAutoscaling=false"}, nil
	case *c.EnableInTreeAutoscaling:
		return nil, field.ErrorList{field.Invalid(clusterPath.Child("enableInTreeAutoscaling"), true,
			"must be false for a queued Ray cluster: Kueue admits a fixed size (or set "+annotations.Queueing+": none)")}
	}
	return nil, nil
}

// gpuGroup is the worker group that gets GPUs: the first that already asks for them, else the first.
func gpuGroup(c *rayv1.RayClusterSpec) int {
	i := slices.IndexFunc(c.WorkerGroupSpecs, func(g rayv1.WorkerGroupSpec) bool {
		n, _ := templateGPUs(&g.Template)
		return n > 0
	})
	return max(i, 0)
}

// planRay places s.gpus over workers of the GPU worker group, as the Kaiwo CLI planned them.
func planRay(c *rayv1.RayClusterSpec, clusterPath *field.Path, s *settings) (plan, field.ErrorList) {
	if len(c.WorkerGroupSpecs) == 0 {
		if s.gpus != nil && *s.gpus > 0 || s.opts.Replicas != nil || s.opts.GPUsPerReplica != nil {
			return plan{}, field.ErrorList{field.Required(clusterPath.Child("workerGroupSpecs"), "a worker group to place the requested GPUs and workers on")}
		}
		return plan{replicas: 0}, nil
	}
	gi := gpuGroup(c)
	g := &c.WorkerGroupSpecs[gi]
	t := template{path: clusterPath.Child("workerGroupSpecs").Index(gi).Child("template"), spec: &g.Template}
	if g.NumOfHosts > 1 && (s.gpus != nil || s.opts.Replicas != nil || s.opts.GPUsPerReplica != nil) {
		return plan{}, field.ErrorList{field.Invalid(clusterPath.Child("workerGroupSpecs").Index(gi).Child("numOfHosts"), g.NumOfHosts,
			"must be 1 for a worker group that Kaiwo plans: a Kaiwo worker is one pod")}
	}

	return planWorkers(s, t, ptr.Deref(g.Replicas, 1), func(workers int32) (string, *field.Error) {
		if ptr.Deref(g.Replicas, -1) == workers && ptr.Deref(g.MinReplicas, -1) == workers && ptr.Deref(g.MaxReplicas, -1) == workers {
			return "", nil
		}
		g.Replicas, g.MinReplicas, g.MaxReplicas = ptr.To(workers), ptr.To(workers), ptr.To(workers)
		return fmt.Sprintf("worker group %q set to %d replicas (min=max)", g.GroupName, workers), nil
	})
}
