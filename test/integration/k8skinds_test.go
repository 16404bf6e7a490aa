package integration

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	. "github.com/silogen/kaiwo-webhook/internal/testobj"
	"github.com/silogen/kaiwo-webhook/pkg/annotations"
)

func cronJob(name, ns string, j *batchv1.Job) *batchv1.CronJob {
	return &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: j.Annotations},
		Spec: batchv1.CronJobSpec{Schedule: "0 2 * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: j.Spec}}}
}

// TestCronJobIsCheckedAtCreate: on the real API server, a CronJob with a bad Kaiwo annotation is denied when
// it is created, naming the annotation, not when it first runs; a good one is stored with its job template
// queued (the queue label and suspend), and the Job the CronJob controller creates from that template is
// admitted as the template says, neither mutated again nor denied.
func TestCronJobIsCheckedAtCreate(t *testing.T) {
	const ns = "it-cronjob"
	enforced(t, ns)
	bad := cronJob("bad", ns, MakeJob("x", ns).Annotate(annotations.GPUs, "lots").Obj())
	err := k8s.Create(context.Background(), bad)
	if err == nil || !strings.Contains(err.Error(), annotations.GPUs) || !strings.Contains(err.Error(), "lots") {
		t.Fatalf("a CronJob with gpus=lots: want a denial naming the annotation, got %v", err)
	}
	good := cronJob("nightly", ns, MakeJob("x", ns).Annotate(annotations.GPUs, "2").Obj())
	create(t, good)
	var stored batchv1.CronJob
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "nightly"}, &stored); err != nil {
		t.Fatal(err)
	}
	jt := stored.Spec.JobTemplate
	if jt.Labels[annotations.KueueQueueName] != "team-ml" || !ptr.Deref(jt.Spec.Suspend, false) {
		t.Fatalf("the job template is not queued: labels %v, suspend %v", jt.Labels, jt.Spec.Suspend)
	}
	if got := jt.Spec.Template.Spec.Containers[0].Resources.Limits["amd.com/gpu"]; got.String() != "2" {
		t.Errorf("the job template's GPUs: %s, want 2", got.String())
	}
	// The CronJob controller's Job: the template's metadata and spec, a controller reference to the CronJob.
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "nightly-29000000", Namespace: ns, Labels: jt.Labels, Annotations: jt.Annotations,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: "nightly", UID: stored.UID, Controller: ptr.To(true)}}},
		Spec: *jt.Spec.DeepCopy()}
	want := job.Spec.Template.DeepCopy()
	if err := controllerClient(t, "system:serviceaccount:kube-system:cronjob-controller").Create(context.Background(), job); err != nil {
		t.Fatalf("the Job the CronJob controller creates: %v", err)
	}
	if len(job.Spec.Template.Spec.Containers[0].Env) != len(want.Spec.Containers[0].Env) || job.Labels[annotations.Managed] != "" {
		t.Errorf("the CronJob's Job was mutated again: env %v, labels %v", job.Spec.Template.Spec.Containers[0].Env, job.Labels)
	}
	if !ptr.Deref(job.Spec.Suspend, false) {
		t.Errorf("the CronJob's Job is not suspended")
	}
}

// TestStatefulSetScaleIsHeldToTheGPULimit: kubectl scale of a GPU StatefulSet, and the scale subresource as
// an HPA writes it, are refused beyond maxGpusPerWorkload, and allowed within it and downwards.
func TestStatefulSetScaleIsHeldToTheGPULimit(t *testing.T) {
	const ns = "it-statefulset-scale"
	enforced(t, ns)
	d := MakeDeployment("llm", ns).Annotate(annotations.GPUs, "8").Obj()
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "llm", Namespace: ns, Annotations: d.Annotations},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](1), ServiceName: "llm", Selector: d.Spec.Selector, Template: d.Spec.Template}}
	create(t, sts)
	replicas := func() int32 {
		var s appsv1.StatefulSet
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "llm"}, &s); err != nil {
			t.Fatal(err)
		}
		return ptr.Deref(s.Spec.Replicas, 1)
	}
	scales := func() float64 {
		return testutil.ToFloat64(metrics.Validation.Requests.WithLabelValues("statefulsets/scale", "UPDATE"))
	}
	before := scales()
	refused(t, []string{"maxGpusPerWorkload"}, "-n", ns, "scale", "statefulset/llm", "--replicas", "100")
	if got := scales(); got != before+1 {
		t.Errorf("scale requests at the validator: %v, want %v (the scale subresource must reach it)", got, before+1)
	}
	refused(t, []string{"maxGpusPerWorkload"}, "-n", ns, "scale", "statefulset/llm", "--replicas", "5") // 40 GPUs
	if got := replicas(); got != 1 {
		t.Fatalf("replicas %d after refused scales, want 1", got)
	}
	allowed(t, "-n", ns, "scale", "statefulset/llm", "--replicas", "4") // 32 GPUs
	allowed(t, "-n", ns, "scale", "statefulset/llm", "--replicas", "2")
	if got := replicas(); got != 2 {
		t.Errorf("replicas %d, want 2", got)
	}
	err := k8s.SubResource("scale").Update(context.Background(), sts, client.WithSubResourceBody(&autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Name: "llm", Namespace: ns}, Spec: autoscalingv1.ScaleSpec{Replicas: 1 << 30}}))
	if err == nil || !strings.Contains(err.Error(), "maxGpusPerWorkload") {
		t.Errorf("scale subresource to 2^30 replicas: want a denial naming maxGpusPerWorkload, got %v", err)
	}
	// Growth through the StatefulSet itself is held too.
	var s appsv1.StatefulSet
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "llm"}, &s); err != nil {
		t.Fatal(err)
	}
	s.Spec.Replicas = ptr.To[int32](6)
	if err := k8s.Update(context.Background(), &s); err == nil || !strings.Contains(err.Error(), "maxGpusPerWorkload") {
		t.Errorf("an UPDATE to 6 replicas (48 GPUs): want a denial naming maxGpusPerWorkload, got %v", err)
	}
}
