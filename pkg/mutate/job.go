package mutate

import (
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// job adapts a batch/v1 Job: one pod template, GPUs per pod, suspend and TTL.
type job batchv1.Job

var (
	_ workload = (*job)(nil)
	_ finisher = (*job)(nil)
)

// jobKind registers batch/v1 Jobs: mutated on CREATE (the pod template is immutable).
type jobKind struct{}

func (jobKind) Info() KindInfo {
	return KindInfo{GVK: batchv1.SchemeGroupVersion.WithKind("Job"), Resource: "jobs", Templates: []string{"spec.template"}}
}

func (jobKind) New() client.Object { return &batchv1.Job{} }

func (jobKind) adapt(o client.Object, _ []byte) (workload, error) {
	j, err := as[*batchv1.Job](o)
	return (*job)(j), err
}

func (j *job) object() client.Object { return (*batchv1.Job)(j) }

func (j *job) templates() []template {
	return []template{{path: field.NewPath("spec", "template"), spec: &j.Spec.Template}}
}

// pods: spec.parallelism (default 1), bounded by spec.completions, as Kueue counts a Job's pods.
func (j *job) pods() []pods { return jobPods(&j.Spec, field.NewPath("spec")) }

// jobPods is the most pods of a Job with spec js at p that run at once: parallelism (default 1), bounded by
// completions, as Kueue counts them.
func jobPods(js *batchv1.JobSpec, p *field.Path) []pods {
	n := int64(ptr.Deref(js.Parallelism, 1))
	why := fmt.Sprintf("%s=%d", p.Child("parallelism"), n)
	if c := js.Completions; c != nil && int64(*c) < n {
		n, why = int64(*c), fmt.Sprintf("%s=%d", p.Child("completions"), *c)
	}
	return []pods{{max(n, 0), why}}
}

func (j *job) check() field.ErrorList { return nil }

func (j *job) plan(s *settings) (plan, field.ErrorList) {
	return podPlan(j.templates()[0], s)
}

func (j *job) queue(s *settings) ([]string, field.ErrorList) {
	if ptr.Deref(j.Spec.Suspend, false) {
		return nil, nil
	}
	j.Spec.Suspend = ptr.To(true)
	return []string{"spec.suspend=true until Kueue admits it"}, nil
}

func (j *job) ttl() (*int32, *field.Path, bool) {
	return j.Spec.TTLSecondsAfterFinished, field.NewPath("spec", "ttlSecondsAfterFinished"), true
}

func (j *job) setTTL(v int32) { j.Spec.TTLSecondsAfterFinished = ptr.To(v) }

func (j *job) suspended() bool { return ptr.Deref(j.Spec.Suspend, false) }
