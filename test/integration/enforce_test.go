package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/silogen/kaiwo-webhook/api/v1alpha1"
	. "github.com/silogen/kaiwo-webhook/internal/testobj"
	"github.com/silogen/kaiwo-webhook/pkg/annotations"
)

// teamMLPolicy is the SPEC's team-ml policy, selecting the namespaces labelled team=<team>.
func teamMLPolicy(name, team string) *v1alpha1.KaiwoPolicy {
	return &v1alpha1.KaiwoPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.KaiwoPolicySpec{
			Priority:          10,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{annotations.Team: team}},
			Mode:              v1alpha1.ModeEnforce,
			Defaults: &v1alpha1.PolicyDefaults{Queue: "team-ml", GPUVendor: "amd", GPUsPerNode: ptr.To[int32](8),
				NodeSelector: map[string]string{"node-pool": "gpu"},
				Tolerations:  []corev1.Toleration{{Key: "amd.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}},
			Limits: &v1alpha1.PolicyLimits{MaxGPUsPerWorkload: ptr.To[int32](32), AllowedVendors: []v1alpha1.GPUVendor{"amd"},
				AllowedQueues: []string{"team-ml", "team-ml-low"}, AllowedSecrets: []string{"hf-token", "team-ml-*"}},
			Locked: []v1alpha1.LockedField{"queue", "tolerations", "nodeSelector"},
		},
	}
}

// enforced creates a namespace under the team-ml policy and waits until admission uses the policy.
func enforced(t *testing.T, ns string) {
	t.Helper()
	namespace(t, ns, map[string]string{annotations.Team: ns})
	create(t, teamMLPolicy(ns, ns))
	eventually(t, 60*time.Second, "policy in force", func() error {
		j := MakeJob("probe", ns).Resource(0, "amd.com/gpu", "1").Obj()
		if err := k8s.Create(context.Background(), j, client.DryRunAll); err != nil {
			return err
		}
		if q := j.Labels[annotations.KueueQueueName]; q != "team-ml" {
			return fmt.Errorf("queue label %q", q)
		}
		return nil
	})
}

// kubectl runs the envtest kubectl against the test API server and returns its combined output.
func kubectl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	out, err := exec.Command(bin, append([]string{"--kubeconfig", writeKubeconfig(t)}, args...)...).CombinedOutput()
	return string(out), err
}

// refused runs kubectl and wants it refused by the validating webhook, with a message that
// contains every one of want.
func refused(t *testing.T, want []string, args ...string) {
	t.Helper()
	out, err := kubectl(t, args...)
	if err == nil {
		t.Errorf("kubectl %s: allowed, want refused:\n%s", strings.Join(args, " "), out)
		return
	}
	for _, w := range append([]string{"denied the request"}, want...) {
		if !strings.Contains(out, w) {
			t.Errorf("kubectl %s: output lacks %q:\n%s", strings.Join(args, " "), w, out)
		}
	}
}

func allowed(t *testing.T, args ...string) {
	t.Helper()
	if out, err := kubectl(t, args...); err != nil {
		t.Errorf("kubectl %s: %v, want allowed:\n%s", strings.Join(args, " "), err, out)
	}
}

// TestScaleIsHeldToTheGPULimit: kubectl scale (the scale subresource) of a GPU Deployment is refused
// beyond maxGpusPerWorkload, and allowed within it and downwards.
func TestScaleIsHeldToTheGPULimit(t *testing.T) {
	const ns = "it-enforce-scale"
	enforced(t, ns)
	create(t, MakeDeployment("llm", ns).Annotate(annotations.GPUs, "8").Obj())
	replicas := func() int32 {
		var d appsv1.Deployment
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "llm"}, &d); err != nil {
			t.Fatal(err)
		}
		return ptr.Deref(d.Spec.Replicas, 1)
	}
	scales := func() float64 {
		return testutil.ToFloat64(metrics.Validation.Requests.WithLabelValues("deployments/scale", "UPDATE"))
	}
	before := scales()
	refused(t, []string{"maxGpusPerWorkload"}, "-n", ns, "scale", "deployment/llm", "--replicas", "100")
	if got := scales(); got != before+1 {
		t.Errorf("scale requests at the validator: %v, want %v (the scale subresource must reach it)", got, before+1)
	}
	refused(t, []string{"maxGpusPerWorkload"}, "-n", ns, "scale", "deployment/llm", "--replicas", "5") // 40 GPUs
	if got := replicas(); got != 1 {
		t.Fatalf("replicas %d after refused scales, want 1", got)
	}
	allowed(t, "-n", ns, "scale", "deployment/llm", "--replicas", "4") // 32 GPUs
	before = scales()
	allowed(t, "-n", ns, "scale", "deployment/llm", "--replicas", "2")
	if got := scales(); got != before {
		t.Errorf("a scale-down reached the validator (%v requests, want %v)", got, before)
	}
	if got := replicas(); got != 2 {
		t.Errorf("replicas %d, want 2", got)
	}
	// The same through the client's scale subresource, as an HPA writes it.
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "llm"}}
	err := k8s.SubResource("scale").Update(context.Background(), d, client.WithSubResourceBody(&autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "llm"}, Spec: autoscalingv1.ScaleSpec{Replicas: 1 << 30}}))
	if err == nil || !strings.Contains(err.Error(), "maxGpusPerWorkload") {
		t.Errorf("scale subresource to 2^30 replicas: want a denial naming maxGpusPerWorkload, got %v", err)
	}
	// Growth through the Deployment itself is checked by the same rule.
	refused(t, []string{"maxGpusPerWorkload"}, "-n", ns, "patch", "deployment/llm", "--type=merge", "-p", `{"spec":{"replicas":100}}`)
	if got := replicas(); got != 2 {
		t.Errorf("replicas %d after refused changes, want 2", got)
	}
}

// TestQueuedJobChangesAreHeld: on a suspended, queued Job, the queue label cannot be moved where
// the policy locks it or does not allow it, the user label cannot be rewritten, parallelism cannot
// grow beyond the GPU limit; changes the policy does not care about pass.
func TestQueuedJobChangesAreHeld(t *testing.T) {
	const ns = "it-enforce-job"
	enforced(t, ns)
	// Eight completions, one at a time: parallelism may grow up to 8 pods (64 GPUs) as far as the
	// Job API goes; the policy holds it to 4 (32 GPUs).
	train := MakeJob("train", ns).Annotate(annotations.GPUs, "8").Parallelism(1).Obj()
	train.Spec.Completions = ptr.To[int32](8)
	create(t, train)
	var j batchv1.Job
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "train"}, &j); err != nil {
		t.Fatal(err)
	}
	if j.Labels[annotations.KueueQueueName] != "team-ml" || !ptr.Deref(j.Spec.Suspend, false) || j.Labels[annotations.User] == "" {
		t.Fatalf("not queued and recorded: labels %v suspend %v", j.Labels, j.Spec.Suspend)
	}
	user, job := j.Labels[annotations.User], "job/train"
	refused(t, []string{annotations.KueueQueueName, "other"}, "-n", ns, "label", job, annotations.KueueQueueName+"=other", "--overwrite")
	refused(t, []string{annotations.KueueQueueName}, "-n", ns, "label", job, annotations.KueueQueueName+"=team-ml-low", "--overwrite") // allowed, but locked
	// Taking the Kaiwo keys off in the same update does not hide the change.
	refused(t, []string{annotations.KueueQueueName}, "-n", ns, "label", job, annotations.KueueQueueName+"=other", annotations.Managed+"-", "--overwrite")
	refused(t, nil, "-n", ns, "label", job, annotations.KueueQueueName+"=other", annotations.Managed+"-", annotations.User+"-", "--overwrite")
	refused(t, []string{annotations.User}, "-n", ns, "label", job, annotations.User+"=bob", "--overwrite")
	refused(t, []string{"maxGpusPerWorkload"}, "-n", ns, "patch", job, "--type=merge", "-p", `{"spec":{"parallelism":5}}`) // 40 GPUs
	refused(t, []string{"maxGpusPerWorkload"}, "-n", ns, "patch", job, "--type=merge", "-p", `{"spec":{"parallelism":2147483647}}`)

	allowed(t, "-n", ns, "label", job, "app=train", "--overwrite")
	allowed(t, "-n", ns, "annotate", job, "note=ok", "--overwrite")
	allowed(t, "-n", ns, "patch", job, "--type=merge", "-p", `{"spec":{"parallelism":4}}`) // 32 GPUs

	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "train"}, &j); err != nil {
		t.Fatal(err)
	}
	if j.Labels[annotations.KueueQueueName] != "team-ml" || j.Labels[annotations.User] != user || ptr.Deref(j.Spec.Parallelism, 1) != 4 || j.Labels["app"] != "train" {
		t.Errorf("after the changes: labels %v parallelism %v; want queue team-ml, the creator, parallelism 4, app=train", j.Labels, ptr.Deref(j.Spec.Parallelism, 1))
	}
}

// TestGPUPodsOfOtherKinds: in an Enforce namespace a bare GPU Pod is handled (mutated and admitted) and a
// bare GPU ReplicaSet is refused naming the kinds that are handled; a GPU Pod a Job controls, created by the Job controller, is not sent to
// the validator (the Job was checked), nor a ReplicaSet a Deployment controls, created by the
// Deployment controller; the same owner references written by a team user are refused.
func TestGPUPodsOfOtherKinds(t *testing.T) {
	const ns = "it-enforce-pod"
	enforced(t, ns)
	pod := func(name string, owners ...metav1.OwnerReference) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, OwnerReferences: owners},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
		p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"amd.com/gpu": resource.MustParse("8")}
		return p
	}
	pods := func() float64 {
		return testutil.ToFloat64(metrics.Validation.Requests.WithLabelValues("Pod", "CREATE"))
	}
	before := pods()
	// A bare Pod is a handled kind: it is mutated (queued, the policy's defaults) and admitted.
	bare := pod("bare")
	if err := k8s.Create(context.Background(), bare); err != nil {
		t.Errorf("bare GPU Pod: %v", err)
	} else if bare.Labels[annotations.KueueQueueName] != "team-ml" {
		t.Errorf("bare GPU Pod not queued: labels %v", bare.Labels)
	}
	if got := pods(); got != before+1 {
		t.Errorf("Pod requests at the validator %v, want %v", got, before+1)
	}
	// The Job controller's identity creates a Job's Pods; the Pod is not sent.
	jobController := controllerClient(t, "system:serviceaccount:kube-system:job-controller")
	ofAJob := metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: "train", UID: "0000", Controller: ptr.To(true)}
	if err := jobController.Create(context.Background(), pod("of-a-job", ofAJob)); err != nil {
		t.Fatalf("a Pod the Job controller creates: %v", err)
	}
	if got := pods(); got != before+1 {
		t.Errorf("a Job's Pod reached the validator (%v requests, want %v)", got, before+1)
	}
	// The same owner reference written by a team user exempts nothing.
	err := k8s.Create(context.Background(), pod("forged", ofAJob))
	if err == nil || !strings.Contains(err.Error(), "exempts it only when a controller makes the request") {
		t.Errorf("a GPU Pod with a hand-written Job owner reference: want a denial, got %v", err)
	}

	// A ReplicaSet written by hand would run GPU Pods the Pod webhook exempts: it is refused too.
	rs := func(name string, owners ...metav1.OwnerReference) *appsv1.ReplicaSet {
		d := MakeDeployment(name, ns).Resource(0, "amd.com/gpu", "8").Obj()
		return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, OwnerReferences: owners},
			Spec: appsv1.ReplicaSetSpec{Selector: d.Spec.Selector, Template: d.Spec.Template}}
	}
	if err := k8s.Create(context.Background(), rs("bare-rs")); err == nil || !strings.Contains(err.Error(), "Enforce") {
		t.Errorf("bare GPU ReplicaSet: want a denial, got %v", err)
	}
	ofADeployment := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "llm", UID: "0001", Controller: ptr.To(true)}
	if err := controllerClient(t, "system:serviceaccount:kube-system:deployment-controller").Create(context.Background(), rs("of-a-deployment", ofADeployment)); err != nil {
		t.Fatalf("a ReplicaSet the Deployment controller creates: %v", err)
	}
	if err := k8s.Create(context.Background(), rs("forged-rs", ofADeployment)); err == nil || !strings.Contains(err.Error(), "exempts it only when a controller") {
		t.Errorf("a GPU ReplicaSet with a hand-written Deployment owner reference: want a denial, got %v", err)
	}
}

// controllerClient is a client that makes its requests as user (the suite's admin may impersonate).
func controllerClient(t *testing.T, user string) client.Client {
	t.Helper()
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{UserName: user}
	cl, err := client.New(c, client.Options{Scheme: k8s.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}
