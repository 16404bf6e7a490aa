package mutate

import (
	"fmt"
	"math"
	"slices"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	jobsetv1alpha2 "sigs.k8s.io/jobset/api/jobset/v1alpha2"
)

// jobSet adapts a jobset.x-k8s.io/v1alpha2 JobSet: the pod template of every replicated job; GPUs total
// over replicated jobs x replicas x the pods of each Job, planned per node over the pods of one
// replicated job; suspend and TTL. The Jobs it creates are part of it (see parts.go).
type jobSet jobsetv1alpha2.JobSet

var (
	_ workload   = (*jobSet)(nil)
	_ finisher   = (*jobSet)(nil)
	_ kueueRuled = (*jobSet)(nil)
)

// jobSetKind registers jobset.x-k8s.io/v1alpha2 JobSets: mutated on CREATE (the replicated jobs change only
// while suspended, and Kaiwo plans them once).
type jobSetKind struct{}

func (jobSetKind) Info() KindInfo {
	return KindInfo{GVK: jobsetv1alpha2.SchemeGroupVersion.WithKind("JobSet"), Resource: "jobsets",
		Templates: []string{"spec.replicatedJobs[].template.spec.template"},
		PartOf:    []string{"trainer.kubeflow.org/v1alpha1/TrainJob"}} // a TrainJob runs as a JobSet
}

func (jobSetKind) New() client.Object { return &jobsetv1alpha2.JobSet{} }

func (jobSetKind) adapt(o client.Object, _ []byte) (workload, error) {
	j, err := as[*jobsetv1alpha2.JobSet](o)
	return (*jobSet)(j), err
}

var replicatedJobsPath = field.NewPath("spec", "replicatedJobs")

// maxReplicatedJobs is the most replicated jobs Kueue queues: a Workload has at most 8 pod sets.
const maxReplicatedJobs = 8

func (j *jobSet) object() client.Object { return (*jobsetv1alpha2.JobSet)(j) }

func (j *jobSet) templates() []template {
	ts := make([]template, 0, len(j.Spec.ReplicatedJobs))
	for i := range j.Spec.ReplicatedJobs {
		ts = append(ts, template{path: replicatedJobsPath.Index(i).Child("template", "spec", "template"), spec: &j.Spec.ReplicatedJobs[i].Template.Spec.Template})
	}
	return ts
}

// pods: per replicated job, its Jobs (replicas; 0 reads as unset, which the API server defaults to 1) times
// the pods of each Job, as Kueue counts them. Both are int32, so the product fits an int64.
func (j *jobSet) pods() []pods {
	ps := make([]pods, 0, len(j.Spec.ReplicatedJobs))
	for i := range j.Spec.ReplicatedJobs {
		ps = append(ps, j.replicatedPods(i))
	}
	return ps
}

func (j *jobSet) replicatedPods(i int) pods {
	rj := &j.Spec.ReplicatedJobs[i]
	p := replicatedJobsPath.Index(i)
	per := jobPods(&rj.Template.Spec, p.Child("template", "spec"))
	jobs := int64(max(rj.Replicas, 1))
	return pods{jobs * per.n, fmt.Sprintf("%s=%d x %s", p.Child("replicas"), jobs, per.why)}
}

func (j *jobSet) check() field.ErrorList { return nil }

// plan places s.gpus over the pods of the GPU replicated job: the first whose template asks for GPUs, else
// the one with the most pods (the first of equals). See setWorkers for how its pods are made n workers.
func (j *jobSet) plan(s *settings) (plan, field.ErrorList) {
	rjs := j.Spec.ReplicatedJobs
	if len(rjs) == 0 {
		if s.gpus != nil && *s.gpus > 0 || s.opts.Replicas != nil || s.opts.GPUsPerReplica != nil {
			return plan{}, field.ErrorList{field.Required(replicatedJobsPath, "a replicated job to place the requested GPUs and workers on")}
		}
		return plan{}, nil
	}
	i := slices.IndexFunc(rjs, func(rj jobsetv1alpha2.ReplicatedJob) bool {
		n, _ := templateGPUs(&rj.Template.Spec.Template)
		return n > 0
	})
	if i < 0 {
		i = 0
		for k := range rjs {
			if j.replicatedPods(k).n > j.replicatedPods(i).n {
				i = k
			}
		}
	}
	if _, err := countGPUs(j); err != nil { // a count that overflows, named as the limits name it
		return plan{}, field.ErrorList{err}
	}
	cur := j.replicatedPods(i)
	if cur.n > math.MaxInt32 {
		return plan{}, field.ErrorList{field.Invalid(replicatedJobsPath.Index(i), cur.why,
			fmt.Sprintf("runs %d pods: Kaiwo plans at most 2147483647 workers", cur.n))}
	}
	return planWorkers(s, j.templates()[i], int32(cur.n), func(n int32) (string, *field.Error) { return j.setWorkers(i, n) })
}

// setWorkers makes replicated job i run n pods. One Job of several pods (replicas 1, parallelism over 1)
// stays one Job: parallelism, and completions where set, become n. Otherwise the Jobs keep their pods
// each and replicas becomes n over them, which they must divide.
func (j *jobSet) setWorkers(i int, n int32) (string, *field.Error) {
	rj := &j.Spec.ReplicatedJobs[i]
	p := replicatedJobsPath.Index(i)
	spec := &rj.Template.Spec
	per := jobPods(spec, p.Child("template", "spec"))
	if max(rj.Replicas, 1) == 1 && per.n > 1 {
		if ptr.Deref(spec.Parallelism, 1) == n && (spec.Completions == nil || *spec.Completions == n) {
			return "", nil
		}
		spec.Parallelism = ptr.To(n)
		if spec.Completions != nil {
			spec.Completions = ptr.To(n)
		}
		return fmt.Sprintf("replicated job %q set to one Job of %d pods (parallelism and completions)", rj.Name, n), nil
	}
	if int64(n)%per.n != 0 {
		return "", field.Invalid(p.Child("template", "spec", "parallelism"), per.why,
			fmt.Sprintf("each Job of replicated job %q runs %d pods, which do not divide the %d workers Kaiwo planned: make each Job one pod, or replicas 1", rj.Name, per.n, n))
	}
	jobs := n / int32(per.n)
	if max(rj.Replicas, 1) == jobs {
		return "", nil
	}
	rj.Replicas = jobs
	return fmt.Sprintf("replicated job %q set to %d replicas of %d pods each", rj.Name, jobs, per.n), nil
}

// queue suspends the JobSet until Kueue admits it (Kueue's jobset integration reads the queue label the
// mutation sets on the JobSet); what Kueue refuses of a queued JobSet is denied with the reason.
func (j *jobSet) queue(s *settings) ([]string, field.ErrorList) {
	if errs := j.kueueRules(); len(errs) > 0 {
		return nil, errs
	}
	if ptr.Deref(j.Spec.Suspend, false) {
		return nil, nil
	}
	j.Spec.Suspend = ptr.To(true)
	return []string{"spec.suspend=true until Kueue admits it"}, nil
}

// kueueRules: Kueue queues a JobSet as one Workload with a pod set per replicated job, at most 8.
func (j *jobSet) kueueRules() field.ErrorList {
	if n := len(j.Spec.ReplicatedJobs); n > maxReplicatedJobs {
		return field.ErrorList{field.TooMany(replicatedJobsPath, n, maxReplicatedJobs)}
	}
	return nil
}

func (j *jobSet) ttl() (*int32, *field.Path, bool) {
	return j.Spec.TTLSecondsAfterFinished, field.NewPath("spec", "ttlSecondsAfterFinished"), true
}

func (j *jobSet) setTTL(v int32) { j.Spec.TTLSecondsAfterFinished = ptr.To(v) }

func (j *jobSet) suspended() bool { return ptr.Deref(j.Spec.Suspend, false) }
