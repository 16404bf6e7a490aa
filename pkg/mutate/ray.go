package mutate

import (
	"fmt"
	"slices"

	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
)

// rayJob adapts a ray.io/v1 RayJob: head, worker groups and submitter templates; GPUs planned over workers.
type rayJob struct {
	*rayv1.RayJob
	// keepCluster is an explicit shutdownAfterJobFinishes: false, which Kueue cannot queue.
	keepCluster bool
	// zeroTTL is an explicit ttlSecondsAfterFinished: 0, delete at once.
	zeroTTL bool
}

// rayService adapts a ray.io/v1 RayService: head and worker group templates; GPUs planned over workers.
type rayService rayv1.RayService

var (
	_ workload = (*rayJob)(nil)
	_ finisher = (*rayJob)(nil)
	_ workload = (*rayService)(nil)
)

// Where each kind keeps its cluster spec.
var (
	rayJobCluster     = field.NewPath("spec", "rayClusterSpec")
	rayServiceCluster = field.NewPath("spec", "rayClusterConfig")
)

func (r *rayJob) object() client.Object { return r.RayJob }

func (r *rayJob) templates() []template {
	ts := clusterTemplates(r.Spec.RayClusterSpec, rayJobCluster)
	if r.Spec.SubmitterPodTemplate != nil {
		ts = append(ts, template{path: field.NewPath("spec", "submitterPodTemplate"), spec: r.Spec.SubmitterPodTemplate})
	}
	return ts
}

func (r *rayJob) pods() []pods {
	ps := rayPods(r.Spec.RayClusterSpec, rayJobCluster)
	if r.Spec.SubmitterPodTemplate != nil {
		ps = append(ps, onePod())
	}
	return ps
}

func (r *rayJob) check() field.ErrorList {
	var errs field.ErrorList
	if len(r.Spec.ClusterSelector) > 0 {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "clusterSelector"),
			"Kaiwo plans and queues the Ray cluster a RayJob creates; a RayJob on an existing cluster (clusterSelector) cannot be managed"))
	}
	return append(errs, checkCluster(r.Spec.RayClusterSpec, rayJobCluster)...)
}

func (r *rayJob) plan(s *settings) (plan, field.ErrorList) {
	return planRay(r.Spec.RayClusterSpec, rayJobCluster, s)
}

func (r *rayJob) queue(s *settings) ([]string, field.ErrorList) {
	if r.keepCluster {
		return nil, field.ErrorList{field.Invalid(field.NewPath("spec", "shutdownAfterJobFinishes"), false,
			"must be true for a queued RayJob: Kueue frees the quota only when the cluster is deleted (or set "+annotations.Queueing+": none)")}
	}
	if r.deletionRules() {
		return nil, field.ErrorList{field.Forbidden(field.NewPath("spec", "deletionStrategy", "deletionRules"),
			"a queued RayJob needs shutdownAfterJobFinishes: true, which KubeRay does not allow with deletionRules; remove deletionRules or set "+annotations.Queueing+": none")}
	}
	var notes []string
	if !r.Spec.Suspend {
		r.Spec.Suspend = true
		notes = append(notes, "spec.suspend=true until Kueue admits it")
	}
	if !r.Spec.ShutdownAfterJobFinishes {
		r.Spec.ShutdownAfterJobFinishes = true
		notes = append(notes, "spec.shutdownAfterJobFinishes=true")
	}
	n, errs := noAutoscaling(r.Spec.RayClusterSpec, rayJobCluster)
	return append(notes, n...), errs
}

// ttl: KubeRay takes a TTL only with shutdownAfterJobFinishes and without deletionRules; 0 reads as unset.
func (r *rayJob) ttl() (*int32, *field.Path, bool) {
	var cur *int32
	if r.Spec.TTLSecondsAfterFinished != 0 || r.zeroTTL {
		cur = ptr.To(r.Spec.TTLSecondsAfterFinished)
	}
	return cur, field.NewPath("spec", "ttlSecondsAfterFinished"), r.Spec.ShutdownAfterJobFinishes && !r.deletionRules()
}

func (r *rayJob) deletionRules() bool {
	return r.Spec.DeletionStrategy != nil && len(r.Spec.DeletionStrategy.DeletionRules) > 0
}

func (r *rayJob) setTTL(v int32) { r.Spec.TTLSecondsAfterFinished = v }

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

func (r *rayJob) suspended() bool { return r.Spec.Suspend }

func (r *rayService) suspended() bool { return ptr.Deref(r.Spec.RayClusterSpec.Suspend, false) }
