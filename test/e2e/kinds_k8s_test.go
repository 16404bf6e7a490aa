package e2e

import (
	"fmt"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
)

func cronJob(name, ns string) *batchv1.CronJob {
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: batchv1.CronJobSpec{
			Schedule: "0 3 * * *",
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
				Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "eval", Image: "busybox"}}},
			}}},
		},
	}
}

// Scenario: a CronJob is checked when it is created, not when its first Job is (kube-controller-
// manager, which would create that Job at 03:00, does not even run here): a bad kaiwo annotation,
// on the CronJob or on its job template, is denied at create with a message naming the annotation
// and its value (or, for an unknown key, the key meant), and nothing is stored; a good one is stored with its job template queued
// (queue label and suspend, as Kueue's batch/job integration expects of the Jobs) and its GPUs.
func TestKindsCronJobCheckedAtCreate(t *testing.T) {
	ns := "e2e-kinds-cronjob"
	namespace(t, ns, nil)
	for _, c := range []struct {
		name, key, value string
		onTemplate       bool
		want             []string // in the denial
	}{
		{"gpus not a number", annotations.GPUs, "many", false, []string{annotations.GPUs, `"many"`}},
		{"gpus more than a node", annotations.GPUs, "16", false, []string{annotations.GPUs, `"16"`, "8 GPUs of a node"}},
		{"unknown key", "kaiwo.silogen.ai/gpu", "1", false, []string{"kaiwo.silogen.ai/gpu", "did you mean \"" + annotations.GPUs + "\""}},
		{"gpus not a number on the job template", annotations.GPUs, "many", true, []string{annotations.GPUs, `"many"`}},
	} {
		cj := cronJob("bad", ns)
		m := &cj.ObjectMeta
		if c.onTemplate {
			m = &cj.Spec.JobTemplate.ObjectMeta
		}
		m.Annotations = map[string]string{c.key: c.value}
		err := k8s.Create(bg, cj)
		if err == nil {
			t.Errorf("%s: CronJob with %s: %q created", c.name, c.key, c.value)
			_ = k8s.Delete(bg, cj)
			continue
		}
		if !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) && !apierrors.IsBadRequest(err) {
			t.Errorf("%s: want a denial, got %v", c.name, err)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: denial does not say %s: %v", c.name, w, err)
			}
		}
		if err := k8s.Get(bg, client.ObjectKeyFromObject(cj), &batchv1.CronJob{}); !apierrors.IsNotFound(err) {
			t.Errorf("%s: the denied CronJob is stored (get: %v)", c.name, err)
		}
	}

	good := cronJob("eval", ns)
	good.Annotations = map[string]string{annotations.GPUs: "4"}
	mustCreate(t, good)
	jt := good.Spec.JobTemplate
	if q := jt.Labels[annotations.KueueQueueName]; q != "kaiwo" {
		t.Errorf("job template labels %v, want queue-name kaiwo", jt.Labels)
	}
	if !ptr.Deref(jt.Spec.Suspend, false) {
		t.Errorf("job template suspend = %v, want true", jt.Spec.Suspend)
	}
	if g := gpuLimit(jt.Spec.Template.Spec.Containers[0]); g != 4 {
		t.Errorf("job template amd.com/gpu limit = %d, want 4", g)
	}
}

// Scenario: a bare Pod asking GPUs by annotation is mutated (GPUs, queue label) and queued through
// Kueue's pod integration, with no kubelet: Kueue's webhook gates it, Kueue admits its Workload
// against the GPU quota and removes the gate.
func TestKindsPodQueuedByKueue(t *testing.T) {
	ns := "e2e-kinds-pod"
	namespace(t, ns, nil)
	clusterQueue(t, "cq-kinds-pod", 8)
	localQueue(t, ns, "kaiwo", "cq-kinds-pod")
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "notebook", Namespace: ns, Annotations: map[string]string{annotations.GPUs: "8"}},
		Spec:       corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "main", Image: "busybox"}}},
	}
	mustCreate(t, p)
	if q := p.Labels[annotations.KueueQueueName]; q != "kaiwo" {
		t.Fatalf("Pod labels %v, want queue-name kaiwo", p.Labels)
	}
	if g := gpuLimit(p.Spec.Containers[0]); g != 8 {
		t.Errorf("Pod amd.com/gpu limit = %d, want 8", g)
	}
	if !hasGate(p, kueueAdmissionGate) {
		t.Errorf("Pod scheduling gates %v: Kueue's pod webhook did not gate it", p.Spec.SchedulingGates)
	}
	wl := waitAdmitted(t, ns, "Pod", p.Name)
	if a := wl.Status.Admission.PodSetAssignments; len(a) != 1 || a[0].ResourceUsage.Name(gpu, resource.DecimalSI).Value() != 8 {
		t.Errorf("admission %+v, want 8 %s", a, gpu)
	}
	eventually(t, "Pod ungated by Kueue", func() error {
		get(t, p)
		if hasGate(p, kueueAdmissionGate) {
			return fmt.Errorf("scheduling gates %v", p.Spec.SchedulingGates)
		}
		return nil
	})
}

const kueueAdmissionGate = "kueue.x-k8s.io/admission"

func hasGate(p *corev1.Pod, name string) bool {
	for _, g := range p.Spec.SchedulingGates {
		if g.Name == name {
			return true
		}
	}
	return false
}
