package mutate

import (
	"fmt"
	"math"
	"slices"
	"strconv"

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
	annots := field.NewPath("metadata", "annotations")
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

	perTemplate, _ := templateGPUs(&g.Template)
	if perTemplate < 0 || perTemplate > math.MaxInt32 {
		return plan{}, field.ErrorList{field.Invalid(t.path.Child("spec", "containers"), perTemplate, "GPUs per worker must be from 0 to 2147483647")}
	}
	workers, per, note, err := rayShape(s, annots, int32(perTemplate), t.path)
	if err != nil {
		return plan{}, field.ErrorList{err}
	}
	if workers == 0 { // nothing asked: describe what is there
		n := int32(0)
		for _, wg := range c.WorkerGroupSpecs {
			if got, _ := templateGPUs(&wg.Template); got > 0 {
				n = int32(got)
				break
			}
		}
		w := ptr.Deref(g.Replicas, 1)
		return plan{replicas: w, perReplica: n}, nil
	}
	p := plan{replicas: workers, perReplica: per, target: &t}
	if per == 0 {
		p.target = nil
	}
	if note != "" {
		p.notes = append(p.notes, note)
	}
	if ptr.Deref(g.Replicas, -1) != workers || ptr.Deref(g.MinReplicas, -1) != workers || ptr.Deref(g.MaxReplicas, -1) != workers {
		g.Replicas, g.MinReplicas, g.MaxReplicas = ptr.To(workers), ptr.To(workers), ptr.To(workers)
		p.notes = append(p.notes, fmt.Sprintf("worker group %q set to %d replicas (min=max)", g.GroupName, workers))
	}
	return p, nil
}

// rayShape returns workers and GPUs per worker from the annotations and the policy's GPUs per node.
// Zero workers means the user asked for nothing to plan.
// GPUs per worker that the group's template already asks for count as gpus-per-replica.
// A worker that needs more GPUs than a node has is denied, naming what gave it its GPUs.
func rayShape(s *settings, annots *field.Path, perTemplate int32, tpath *field.Path) (int32, int32, string, *field.Error) {
	workers, per, note, err := rayShapeOf(s, annots, perTemplate, tpath)
	if err != nil || per == 0 {
		return workers, per, note, err
	}
	if _, tp, perr := s.parallelism(); perr != nil {
		return 0, 0, "", perr
	} else if err := s.fitNode(tp, annots.Key(annotations.Env), fmt.Sprintf("%s=%d", EnvTensorParallelism, tp), EnvTensorParallelism+" (a tensor-parallel group runs on one worker)"); err != nil {
		return 0, 0, "", err
	}
	if w := s.halfNode(int64(workers), int64(per)); w != "" {
		note += "; " + w
	}
	return workers, per, note, nil
}

func rayShapeOf(s *settings, annots *field.Path, perTemplate int32, tpath *field.Path) (int32, int32, string, *field.Error) {
	o := s.opts
	if o.GPUsPerReplica == nil && perTemplate > 0 && s.gpus != nil && *s.gpus > 0 {
		total := int64(*s.gpus)
		if err := s.fitNode(int64(perTemplate), tpath, perTemplate, "the GPU request of this worker template"); err != nil {
			return 0, 0, "", err
		}
		if total%int64(perTemplate) != 0 {
			return 0, 0, "", field.Invalid(annots.Key(annotations.GPUs), strconv.FormatInt(total, 10),
				fmt.Sprintf("must be a multiple of the %d GPUs per worker that %s asks for (or remove that request and let Kaiwo plan)", perTemplate, tpath))
		}
		w := int32(total / int64(perTemplate))
		return w, perTemplate, fmt.Sprintf("%d GPUs as %d workers x %d %s (GPUs per worker from %s)", total, w, perTemplate, s.resource, tpath), nil
	}
	perNode, _ := s.perNode()
	total := int64(-1)
	if s.gpus != nil {
		total = int64(*s.gpus)
	}
	if o.GPUsPerReplica != nil {
		if err := s.fitNode(int64(*o.GPUsPerReplica), annots.Key(annotations.GPUsPerReplica), strconv.Itoa(int(*o.GPUsPerReplica)), annotations.GPUsPerReplica); err != nil {
			err.Detail += "; use more replicas with fewer GPUs each"
			return 0, 0, "", err
		}
	}
	switch {
	case o.Replicas != nil && o.GPUsPerReplica != nil:
		prod := int64(*o.Replicas) * int64(*o.GPUsPerReplica)
		if total >= 0 && prod != total {
			return 0, 0, "", field.Invalid(annots.Key(annotations.GPUs), strconv.FormatInt(total, 10),
				fmt.Sprintf("must equal replicas x gpus-per-replica = %d x %d = %d", *o.Replicas, *o.GPUsPerReplica, prod))
		}
		return *o.Replicas, *o.GPUsPerReplica, fmt.Sprintf("%d GPUs as %d workers x %d %s (from annotations)", prod, *o.Replicas, *o.GPUsPerReplica, s.resource), nil
	case o.GPUsPerReplica != nil:
		if total < 0 {
			return 1, *o.GPUsPerReplica, fmt.Sprintf("1 worker x %d %s (from annotations)", *o.GPUsPerReplica, s.resource), nil
		}
		if total%int64(*o.GPUsPerReplica) != 0 {
			return 0, 0, "", field.Invalid(annots.Key(annotations.GPUsPerReplica), strconv.Itoa(int(*o.GPUsPerReplica)),
				fmt.Sprintf("must divide %s (%d) evenly", annotations.GPUs, total))
		}
		w := int32(total / int64(*o.GPUsPerReplica))
		return w, *o.GPUsPerReplica, fmt.Sprintf("%d GPUs as %d workers x %d %s (from annotations)", total, w, *o.GPUsPerReplica, s.resource), nil
	case o.Replicas != nil:
		if total < 0 {
			return *o.Replicas, 0, "", nil
		}
		if total%int64(*o.Replicas) != 0 {
			return 0, 0, "", field.Invalid(annots.Key(annotations.Replicas), strconv.Itoa(int(*o.Replicas)),
				fmt.Sprintf("must divide %s (%d) evenly", annotations.GPUs, total))
		}
		per := int32(total / int64(*o.Replicas))
		if err := s.fitNode(int64(per), annots.Key(annotations.Replicas), strconv.Itoa(int(*o.Replicas)),
			fmt.Sprintf("%s (%d) over %d workers", annotations.GPUs, total, *o.Replicas)); err != nil {
			err.Detail += "; use more replicas"
			return 0, 0, "", err
		}
		return *o.Replicas, per, fmt.Sprintf("%d GPUs as %d workers x %d %s (from annotations)", total, *o.Replicas, per, s.resource), nil
	case total <= 0:
		return 0, 0, "", nil
	}
	pp, tp, perr := s.parallelism()
	if perr != nil {
		return 0, 0, "", perr
	}
	workers, per, why, err := planGPUs(total, perNode, pp, tp)
	if err != nil {
		return 0, 0, "", field.Invalid(annots.Key(annotations.Env), fmt.Sprintf("PIPELINE_PARALLELISM=%d x TENSOR_PARALLELISM=%d", pp, tp), err.Error())
	}
	return int32(workers), int32(per), fmt.Sprintf("%d GPUs planned as %d workers x %d %s (%s)", total, workers, per, s.resource, why), nil
}

// planGPUs is the Kaiwo CLI's planning: pipeline x tensor parallelism when both are set; all GPUs on
// one worker when they fit a node; else the largest divisor of the total that fits a node.
// It returns workers, GPUs per worker and why; an error when the parallelism pair does not multiply to
// the total.
func planGPUs(total, perNode, pp, tp int64) (int64, int64, string, error) {
	if pp > 1 && tp > 0 {
		if pp*tp != total {
			return 0, 0, "", fmt.Errorf("must multiply to %s (%d)", annotations.GPUs, total)
		}
		return pp, tp, "PIPELINE_PARALLELISM x TENSOR_PARALLELISM", nil
	}
	if total <= perNode {
		return 1, total, fmt.Sprintf("fits one node of %d GPUs", perNode), nil
	}
	d := largestDivisor(total, perNode)
	return total / d, d, fmt.Sprintf("%d GPUs per node", perNode), nil
}

// largestDivisor is the largest divisor of n (n >= 1) that is at most max (max >= 1). It tries the
// divisors up to the square root of n, so a huge gpusPerNode costs no more than a small one.
func largestDivisor(n, max int64) int64 {
	best := int64(1)
	for i := int64(1); i*i <= n; i++ {
		if n%i != 0 {
			continue
		}
		if i <= max && i > best {
			best = i
		}
		if j := n / i; j <= max && j > best {
			best = j
		}
	}
	return best
}
