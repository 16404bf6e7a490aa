package mutate

import (
	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	"github.com/tidwall/gjson"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
)

// rayJob adapts a ray.io/v1 RayJob: head, worker groups and submitter templates; GPUs planned over workers.
// It carries what raw says beside the Go type: RayJob's spec.shutdownAfterJobFinishes and
// spec.ttlSecondsAfterFinished are a plain bool and int32, so an explicit false or 0 reads as unset.
type rayJob struct {
	*rayv1.RayJob
	// keepCluster is an explicit shutdownAfterJobFinishes: false, which Kueue cannot queue.
	keepCluster bool
	// zeroTTL is an explicit ttlSecondsAfterFinished: 0, delete at once.
	zeroTTL bool
}

var (
	_ workload = (*rayJob)(nil)
	_ finisher = (*rayJob)(nil)
)

// rayJobCluster is where a RayJob keeps its cluster spec.
var rayJobCluster = field.NewPath("spec", "rayClusterSpec")

// rayJobKind registers ray.io/v1 RayJobs: mutated on CREATE (the cluster spec is immutable).
type rayJobKind struct{}

func (rayJobKind) Info() KindInfo {
	return KindInfo{GVK: rayv1.GroupVersion.WithKind("RayJob"), Resource: "rayjobs", Templates: []string{
		"spec.rayClusterSpec.headGroupSpec.template",
		"spec.rayClusterSpec.workerGroupSpecs[].template",
		"spec.submitterPodTemplate",
	}}
}

func (rayJobKind) New() client.Object { return &rayv1.RayJob{} }

// adapt reads the explicit false and 0 from raw, which only a request has.
func (rayJobKind) adapt(o client.Object, raw []byte) (workload, error) {
	j, err := as[*rayv1.RayJob](o)
	if err != nil {
		return nil, err
	}
	r := &rayJob{RayJob: j}
	if len(raw) > 0 {
		v := gjson.GetManyBytes(raw, "spec.shutdownAfterJobFinishes", "spec.ttlSecondsAfterFinished")
		r.keepCluster = v[0].Type == gjson.False
		r.zeroTTL = v[1].Type == gjson.Number && v[1].Raw == "0"
	}
	return r, nil
}

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

func (r *rayJob) suspended() bool { return r.Spec.Suspend }
