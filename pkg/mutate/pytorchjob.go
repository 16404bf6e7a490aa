package mutate

import (
	"fmt"
	"math"
	"slices"

	kftraining "github.com/kubeflow/training-operator/pkg/apis/kubeflow.org/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
)

// pyTorchJob adapts a kubeflow.org/v1 PyTorchJob: a pod template per replica type (Master, Worker, and any
// other key the map holds, so that none escapes the rules); GPUs are the total over the Master and the
// Workers, planned per node like Ray's workers; queued with spec.runPolicy.suspend, as Kueue's
// pytorchjob integration expects.
type pyTorchJob kftraining.PyTorchJob

var (
	_ workload = (*pyTorchJob)(nil)
	_ finisher = (*pyTorchJob)(nil)
	_ scaler   = (*pyTorchJob)(nil)
)

// pyTorchJobKind registers kubeflow.org/v1 PyTorchJobs: mutated on CREATE, with a scale subresource (the
// Workers' replicas).
type pyTorchJobKind struct{}

func (pyTorchJobKind) Info() KindInfo {
	return KindInfo{GVK: kftraining.SchemeGroupVersion.WithKind(kftraining.PyTorchJobKind), Resource: "pytorchjobs",
		Scale: true, Templates: []string{"spec.pytorchReplicaSpecs{}.template"}}
}

func (pyTorchJobKind) New() client.Object { return &kftraining.PyTorchJob{} }

func (pyTorchJobKind) adapt(o client.Object, _ []byte) (workload, error) {
	j, err := as[*kftraining.PyTorchJob](o)
	return (*pyTorchJob)(j), err
}

var (
	pyTorchReplicas = field.NewPath("spec", "pytorchReplicaSpecs")
)

func (j *pyTorchJob) object() client.Object { return (*kftraining.PyTorchJob)(j) }

// replicaTypes are the keys of spec.pytorchReplicaSpecs with a spec, Master and Worker first (Kueue's
// order), then the others sorted.
func (j *pyTorchJob) replicaTypes() []kftraining.ReplicaType {
	var rest []kftraining.ReplicaType
	for rt, spec := range j.Spec.PyTorchReplicaSpecs {
		if spec != nil && rt != kftraining.PyTorchJobReplicaTypeMaster && rt != kftraining.PyTorchJobReplicaTypeWorker {
			rest = append(rest, rt)
		}
	}
	slices.Sort(rest)
	var out []kftraining.ReplicaType
	for _, rt := range []kftraining.ReplicaType{kftraining.PyTorchJobReplicaTypeMaster, kftraining.PyTorchJobReplicaTypeWorker} {
		if j.Spec.PyTorchReplicaSpecs[rt] != nil {
			out = append(out, rt)
		}
	}
	return append(out, rest...)
}

func (j *pyTorchJob) templateOf(rt kftraining.ReplicaType) *template {
	spec := j.Spec.PyTorchReplicaSpecs[rt]
	if spec == nil {
		return nil
	}
	return &template{path: pyTorchReplicas.Key(string(rt)).Child("template"), spec: &spec.Template}
}

func (j *pyTorchJob) templates() []template {
	var ts []template
	for _, rt := range j.replicaTypes() {
		ts = append(ts, *j.templateOf(rt))
	}
	return ts
}

// pods: each replica type's replicas (default 1, as Kueue counts them); the Workers of an elastic job up to
// spec.elasticPolicy.maxReplicas when that is larger, since the operator may scale them there.
func (j *pyTorchJob) pods() []pods {
	var out []pods
	for _, rt := range j.replicaTypes() {
		p := pyTorchReplicas.Key(string(rt)).Child("replicas")
		n := int64(ptr.Deref(j.Spec.PyTorchReplicaSpecs[rt].Replicas, 1))
		why := fmt.Sprintf("%s=%d", p, n)
		if e := j.Spec.ElasticPolicy; e != nil && rt == kftraining.PyTorchJobReplicaTypeWorker {
			if m := int64(ptr.Deref(e.MaxReplicas, 0)); m > n {
				n, why = m, fmt.Sprintf("spec.elasticPolicy.maxReplicas=%d", m)
			}
		}
		out = append(out, pods{max(n, 0), why})
	}
	return out
}

func (j *pyTorchJob) check() field.ErrorList { return nil }

// setReplicas sets the Workers' replicas, as the scale subresource does (its specReplicasPath).
func (j *pyTorchJob) setReplicas(n int32) {
	if r := j.Spec.PyTorchReplicaSpecs[kftraining.PyTorchJobReplicaTypeWorker]; r != nil {
		r.Replicas = &n
	}
}

// plan places s.gpus over the Master and the Workers: every one of them gets the same GPUs, and the
// Workers' replicas become the planned pods less the Master.
func (j *pyTorchJob) plan(s *settings) (plan, field.ErrorList) {
	master, worker := j.templateOf(kftraining.PyTorchJobReplicaTypeMaster), j.templateOf(kftraining.PyTorchJobReplicaTypeWorker)
	var cur int64 // the pods NUM_REPLICAS describes when nothing is planned
	for _, rt := range []kftraining.ReplicaType{kftraining.PyTorchJobReplicaTypeMaster, kftraining.PyTorchJobReplicaTypeWorker} {
		if r := j.Spec.PyTorchReplicaSpecs[rt]; r != nil {
			cur += int64(max(ptr.Deref(r.Replicas, 1), 0))
		}
	}
	var lead *template
	switch {
	case worker == nil && master == nil:
		if s.gpus != nil && *s.gpus > 0 || s.opts.Replicas != nil || s.opts.GPUsPerReplica != nil {
			return plan{}, field.ErrorList{field.Required(pyTorchReplicas.Key(string(kftraining.PyTorchJobReplicaTypeWorker)), "a Master or Worker replica spec to place the requested GPUs on")}
		}
		return plan{}, nil
	case worker == nil:
		worker = master // a Master alone: it is the group
	default:
		lead = master
	}
	p, n, errs := planGroup(s, lead, *worker, int32(min(cur, math.MaxInt32)))
	if len(errs) > 0 || n == 0 {
		return p, errs
	}
	want := n
	if lead != nil {
		want = n - 1 // the Master is one of the planned pods
		if r := j.Spec.PyTorchReplicaSpecs[kftraining.PyTorchJobReplicaTypeMaster]; ptr.Deref(r.Replicas, 1) != 1 {
			return plan{}, field.ErrorList{field.Invalid(pyTorchReplicas.Key(string(kftraining.PyTorchJobReplicaTypeMaster)).Child("replicas"), ptr.Deref(r.Replicas, 1),
				"must be 1 for a PyTorchJob that Kaiwo plans: the Master is one of the planned pods")}
		}
	}
	if worker == master {
		if want != 1 {
			return plan{}, field.ErrorList{field.Required(pyTorchReplicas.Key(string(kftraining.PyTorchJobReplicaTypeWorker)),
				fmt.Sprintf("a Worker replica spec: the plan needs %d pods and a PyTorchJob has one Master", want))}
		}
		return p, nil
	}
	r := j.Spec.PyTorchReplicaSpecs[kftraining.PyTorchJobReplicaTypeWorker]
	if ptr.Deref(r.Replicas, 1) != want {
		r.Replicas = ptr.To(want)
		p.notes = append(p.notes, fmt.Sprintf("%s set to %d", pyTorchReplicas.Key(string(kftraining.PyTorchJobReplicaTypeWorker)).Child("replicas"), want))
	}
	return p, nil
}

// queue suspends the job (spec.runPolicy.suspend) until Kueue admits it. Kueue admits a fixed number of
// pods per replica type: an elastic policy that lets the operator scale the Workers is denied.
func (j *pyTorchJob) queue(*settings) ([]string, field.ErrorList) {
	if e := j.Spec.ElasticPolicy; e != nil {
		w := int32(1)
		if r := j.Spec.PyTorchReplicaSpecs[kftraining.PyTorchJobReplicaTypeWorker]; r != nil {
			w = ptr.Deref(r.Replicas, 1)
		}
		ep := field.NewPath("spec", "elasticPolicy")
		switch {
		case len(e.Metrics) > 0:
			return nil, field.ErrorList{field.Forbidden(ep.Child("metrics"),
				"a queued PyTorchJob cannot autoscale: Kueue admits a fixed number of Workers (or set "+annotations.Queueing+": none)")}
		case e.MinReplicas != nil && *e.MinReplicas != w, e.MaxReplicas != nil && *e.MaxReplicas != w:
			return nil, field.ErrorList{field.Invalid(ep, fmt.Sprintf("minReplicas=%d, maxReplicas=%d", ptr.Deref(e.MinReplicas, w), ptr.Deref(e.MaxReplicas, w)),
				fmt.Sprintf("must both equal the Workers' replicas (%d) for a queued PyTorchJob: Kueue admits a fixed number of Workers and does not follow an elastic scale (or set %s: none)", w, annotations.Queueing))}
		}
	}
	if ptr.Deref(j.Spec.RunPolicy.Suspend, false) {
		return nil, nil
	}
	j.Spec.RunPolicy.Suspend = ptr.To(true)
	return []string{"spec.runPolicy.suspend=true until Kueue admits it"}, nil
}

func (j *pyTorchJob) ttl() (*int32, *field.Path, bool) {
	return j.Spec.RunPolicy.TTLSecondsAfterFinished, field.NewPath("spec", "runPolicy", "ttlSecondsAfterFinished"), true
}

func (j *pyTorchJob) setTTL(v int32) { j.Spec.RunPolicy.TTLSecondsAfterFinished = ptr.To(v) }

func (j *pyTorchJob) suspended() bool { return ptr.Deref(j.Spec.RunPolicy.Suspend, false) }
