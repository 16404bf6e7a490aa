package mutate

import (
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// cronJob adapts a batch/v1 CronJob: the pod template of its job template, GPUs per pod as a Job. Kueue has
// no CronJob integration: it queues each Job the CronJob creates, as a Job, by the queue label the Job takes
// from spec.jobTemplate.metadata.labels. So the queue labels and suspend go on the job template, and the
// Jobs the CronJob controller creates from it are left alone (see fromCheckedTemplate).
type cronJob batchv1.CronJob

var (
	_ workload    = (*cronJob)(nil)
	_ finisher    = (*cronJob)(nil)
	_ createdMeta = (*cronJob)(nil)

	jobTemplatePath = field.NewPath("spec", "jobTemplate")
)

// cronJobKind registers batch/v1 CronJobs: mutated on CREATE only, as Jobs; an UPDATE is validated. Its
// controller creates Jobs, which take the job template's labels.
type cronJobKind struct{}

func (cronJobKind) Info() KindInfo {
	return KindInfo{GVK: batchv1.SchemeGroupVersion.WithKind("CronJob"), Resource: "cronjobs",
		Templates: []string{"spec.jobTemplate.spec.template"}, QueueLabels: []string{"spec.jobTemplate.metadata.labels"},
		Creates: []schema.GroupKind{batchv1.SchemeGroupVersion.WithKind("Job").GroupKind()}}
}

func (cronJobKind) New() client.Object { return &batchv1.CronJob{} }

func (cronJobKind) adapt(o client.Object, _ []byte) (workload, error) {
	c, err := as[*batchv1.CronJob](o)
	return (*cronJob)(c), err
}

func (c *cronJob) object() client.Object { return (*batchv1.CronJob)(c) }

func (c *cronJob) templates() []template {
	return []template{{path: jobTemplatePath.Child("spec", "template"), spec: &c.Spec.JobTemplate.Spec.Template}}
}

// pods: the pods of one Job, as a Job counts them (each Job a CronJob starts is its own workload in Kueue).
func (c *cronJob) pods() []pods {
	return []pods{jobPods(&c.Spec.JobTemplate.Spec, jobTemplatePath.Child("spec"))}
}

func (c *cronJob) check() field.ErrorList { return nil }

func (c *cronJob) plan(s *settings) (plan, field.ErrorList) {
	return podPlan(c.templates()[0], s)
}

// queue labels the job template, from which each Job takes its labels, and suspends it, so that every
// Job starts suspended until Kueue admits it.
func (c *cronJob) queue(s *settings) ([]string, field.ErrorList) {
	var notes []string
	if setObjectLabels(&c.Spec.JobTemplate.ObjectMeta, queueLabels(s)) {
		notes = append(notes, "queue labels on the job template")
	}
	if !ptr.Deref(c.Spec.JobTemplate.Spec.Suspend, false) {
		c.Spec.JobTemplate.Spec.Suspend = ptr.To(true)
		notes = append(notes, "spec.jobTemplate.spec.suspend=true: each Job waits until Kueue admits it")
	}
	return notes, nil
}

func (c *cronJob) createdMeta() (*metav1.ObjectMeta, *field.Path) {
	return &c.Spec.JobTemplate.ObjectMeta, jobTemplatePath.Child("metadata")
}

func (c *cronJob) ttl() (*int32, *field.Path, bool) {
	return c.Spec.JobTemplate.Spec.TTLSecondsAfterFinished, jobTemplatePath.Child("spec", "ttlSecondsAfterFinished"), true
}

func (c *cronJob) setTTL(v int32) { c.Spec.JobTemplate.Spec.TTLSecondsAfterFinished = ptr.To(v) }
