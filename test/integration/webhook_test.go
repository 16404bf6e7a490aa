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

	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	kueue "sigs.k8s.io/kueue/apis/kueue/v1beta2"

	"github.com/silogen/kaiwo-webhook/api/v1alpha1"
	. "github.com/silogen/kaiwo-webhook/internal/testobj"
	"github.com/silogen/kaiwo-webhook/pkg/annotations"
)

func namespace(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
}

func create(t *testing.T, obj client.Object, opts ...client.CreateOption) {
	t.Helper()
	if err := k8s.Create(context.Background(), obj, opts...); err != nil {
		t.Fatalf("creating %s: %v", obj.GetName(), err)
	}
}

func jobRequests() float64 {
	return testutil.ToFloat64(metrics.Requests.WithLabelValues("Job", "CREATE"))
}

// TestAnnotatedJobIsMutatedAndPlainJobNeverReachesTheWebhook: the API server evaluates the
// matchConditions of config/webhook, so only the annotated Job is sent to the webhook.
func TestAnnotatedJobIsMutatedAndPlainJobNeverReachesTheWebhook(t *testing.T) {
	namespace(t, "it-basic", nil)
	before := jobRequests()
	create(t, MakeJob("plain", "it-basic").Obj())
	if got := jobRequests(); got != before {
		t.Fatalf("the webhook was called for a plain Job: %v requests, want %v", got, before)
	}

	create(t, MakeJob("annotated", "it-basic").Annotate(annotations.GPUs, "2").Obj())
	if got := jobRequests(); got != before+1 {
		t.Errorf("webhook Job requests = %v, want %v", got, before+1)
	}
	var j batchv1.Job
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: "it-basic", Name: "annotated"}, &j); err != nil {
		t.Fatal(err)
	}
	if j.Labels[annotations.KueueQueueName] != "kaiwo" || !ptr.Deref(j.Spec.Suspend, false) {
		t.Errorf("not queued: labels %v suspend %v", j.Labels, j.Spec.Suspend)
	}
	c := j.Spec.Template.Spec.Containers[0]
	if q := c.Resources.Limits["amd.com/gpu"]; q.Value() != 2 {
		t.Errorf("amd.com/gpu limit = %v, want 2", q.String())
	}
	if j.Labels[annotations.User] == "" {
		t.Error("no user label")
	}
	var plain batchv1.Job
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: "it-basic", Name: "plain"}, &plain); err != nil {
		t.Fatal(err)
	}
	if _, ok := plain.Labels[annotations.Managed]; ok || plain.Spec.Suspend != nil && *plain.Spec.Suspend {
		t.Errorf("plain Job was changed: %v", plain.Labels)
	}
}

func TestBadAnnotationIsDeniedWithTheField(t *testing.T) {
	namespace(t, "it-deny", nil)
	err := k8s.Create(context.Background(), MakeJob("bad", "it-deny").Annotate(annotations.GPUs, "eight").Obj())
	if err == nil || !strings.Contains(err.Error(), "kaiwo.silogen.ai/gpus") || !strings.Contains(err.Error(), `"eight"`) {
		t.Fatalf("want a denial naming the annotation and value, got %v", err)
	}
	if !apierrors.IsForbidden(err) {
		t.Errorf("want 403 Forbidden, got %v", err)
	}
}

// TestPolicyReachesAdmission: a KaiwoPolicy applied while the server runs is used by the next
// admission decisions in the namespaces it selects, and its LocalQueue appears there.
func TestPolicyReachesAdmission(t *testing.T) {
	ctx := context.Background()
	namespace(t, "it-team", map[string]string{annotations.Team: "it"})
	// The user's own LocalQueue of the policy's name, pointing elsewhere, is left alone.
	namespace(t, "it-team-own", map[string]string{annotations.Team: "it"})
	create(t, &kueue.LocalQueue{ObjectMeta: metav1.ObjectMeta{Name: "it-queue", Namespace: "it-team-own"}, Spec: kueue.LocalQueueSpec{ClusterQueue: "mine"}})

	pol := &v1alpha1.KaiwoPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "it-team"},
		Spec: v1alpha1.KaiwoPolicySpec{
			Priority:          10,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{annotations.Team: "it"}},
			Mode:              v1alpha1.ModeEnforce,
			Defaults:          &v1alpha1.PolicyDefaults{Queue: "it-queue"},
			Limits:            &v1alpha1.PolicyLimits{MaxGPUsPerWorkload: ptr.To[int32](8)},
			Locked:            []v1alpha1.LockedField{"queue"},
			LocalQueue:        &v1alpha1.LocalQueuePolicy{Create: true, ClusterQueue: "kaiwo"},
		},
	}
	applied := time.Now()
	create(t, pol)

	// An unannotated GPU Job in an Enforce namespace is managed once the policy is in force;
	// server-side dry-run shows the decision without creating anything.
	took := eventually(t, 60*time.Second, "policy in force", func() error {
		j := MakeJob("probe", "it-team").Resource(0, "amd.com/gpu", "1").Obj()
		if err := k8s.Create(ctx, j, client.DryRunAll); err != nil {
			return err
		}
		if q := j.Labels[annotations.KueueQueueName]; q != "it-queue" {
			return fmt.Errorf("queue label %q", q)
		}
		return nil
	})
	t.Logf("policy change reached admission %v after the KaiwoPolicy was created", took.Round(time.Millisecond))

	err := k8s.Create(ctx, MakeJob("too-big", "it-team").Annotate(annotations.GPUs, "8").Parallelism(2).Obj())
	if err == nil || !strings.Contains(err.Error(), "maxGpusPerWorkload") || !strings.Contains(err.Error(), "it-team") {
		t.Errorf("want a limit denial naming the policy, got %v", err)
	}
	err = k8s.Create(ctx, MakeJob("other-queue", "it-team").Annotate(annotations.Queue, "elsewhere").Obj())
	if err == nil || !strings.Contains(err.Error(), "locked") || !strings.Contains(err.Error(), "it-team") {
		t.Errorf("want a locked-queue denial naming the policy, got %v", err)
	}

	tookLQ := eventually(t, 60*time.Second, "LocalQueue created", func() error {
		var lq kueue.LocalQueue
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: "it-team", Name: "it-queue"}, &lq); err != nil {
			return err
		}
		if lq.Spec.ClusterQueue != "kaiwo" {
			return fmt.Errorf("clusterQueue %q", lq.Spec.ClusterQueue)
		}
		return nil
	})
	t.Logf("LocalQueue created %v after the probe succeeded (%v after the policy)", tookLQ.Round(time.Millisecond), time.Since(applied).Round(time.Millisecond))
	var own kueue.LocalQueue
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: "it-team-own", Name: "it-queue"}, &own); err != nil || own.Spec.ClusterQueue != "mine" {
		t.Errorf("the user's LocalQueue was changed: %v %v", own.Spec.ClusterQueue, err)
	}

	// A LocalQueue deleted by someone comes back.
	var lq kueue.LocalQueue
	_ = k8s.Get(ctx, types.NamespacedName{Namespace: "it-team", Name: "it-queue"}, &lq)
	if err := k8s.Delete(ctx, &lq); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "LocalQueue recreated", func() error {
		var again kueue.LocalQueue
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: "it-team", Name: "it-queue"}, &again); err != nil {
			return err
		}
		if again.UID == lq.UID {
			return fmt.Errorf("still the deleted one")
		}
		return nil
	})

	// A namespace labelled later is covered too.
	namespace(t, "it-team-late", nil)
	var late corev1.Namespace
	_ = k8s.Get(ctx, types.NamespacedName{Name: "it-team-late"}, &late)
	late.Labels = map[string]string{annotations.Team: "it"}
	if err := k8s.Update(ctx, &late); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "LocalQueue in a newly labelled namespace", func() error {
		return k8s.Get(ctx, types.NamespacedName{Namespace: "it-team-late", Name: "it-queue"}, &kueue.LocalQueue{})
	})
}

func TestInvalidPolicyIsDenied(t *testing.T) {
	pol := &v1alpha1.KaiwoPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "it-bad"},
		Spec: v1alpha1.KaiwoPolicySpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"x": "y"}},
			Limits:            &v1alpha1.PolicyLimits{AllowedSecrets: []string{"team-[a"}},
		},
	}
	err := k8s.Create(context.Background(), pol)
	if err == nil || !strings.Contains(err.Error(), "spec.limits.allowedSecrets[0]") || !strings.Contains(err.Error(), "team-[a") {
		t.Fatalf("want a denial naming spec.limits.allowedSecrets[0], got %v", err)
	}
}

// TestKubectlDryRunServerPrintsTheMutatedJob: what a user sees with kubectl, and nothing is created.
func TestKubectlDryRunServerPrintsTheMutatedJob(t *testing.T) {
	namespace(t, "it-kubectl", nil)
	kubeconfig := writeKubeconfig(t)
	manifest := filepath.Join(t.TempDir(), "job.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: batch/v1
kind: Job
metadata:
  name: preview
  namespace: it-kubectl
  annotations:
    kaiwo.silogen.ai/gpus: "4"
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: main
          image: busybox
`), 0o600); err != nil {
		t.Fatal(err)
	}
	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	cmd := exec.Command(kubectl, "--kubeconfig", kubeconfig, "apply", "--dry-run=server", "-o", "yaml", "-f", manifest)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl: %v\n%s", err, out)
	}
	for _, want := range []string{"kueue.x-k8s.io/queue-name: kaiwo", "suspend: true", `amd.com/gpu: "4"`, "Warning: kaiwo:"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("kubectl output lacks %q:\n%s", want, out)
		}
	}
	err = k8s.Get(context.Background(), types.NamespacedName{Namespace: "it-kubectl", Name: "preview"}, &batchv1.Job{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("dry-run created the Job: %v", err)
	}
}

func writeKubeconfig(t *testing.T) string {
	t.Helper()
	c := clientcmdapi.NewConfig()
	c.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	c.AuthInfos["envtest"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	c.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "envtest"}
	c.CurrentContext = "envtest"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*c, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDeploymentReapplyDoesNotDrift: applying the same annotated Deployment again changes nothing,
// so the webhook's UPDATE mutation never rolls the pods.
func TestDeploymentReapplyDoesNotDrift(t *testing.T) {
	namespace(t, "it-serve", nil)
	kubeconfig := writeKubeconfig(t)
	manifest := filepath.Join(t.TempDir(), "deploy.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: llm
  namespace: it-serve
  annotations:
    kaiwo.silogen.ai/gpus: "1"
    kaiwo.silogen.ai/workload-configmap: app
spec:
  replicas: 1
  selector: {matchLabels: {app: llm}}
  template:
    metadata: {labels: {app: llm}}
    spec:
      containers: [{name: server, image: vllm/vllm-openai:latest}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	generation := func() int64 {
		var d appsv1.Deployment
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: "it-serve", Name: "llm"}, &d); err != nil {
			t.Fatal(err)
		}
		if q := d.Spec.Template.Spec.Containers[0].Resources.Limits["amd.com/gpu"]; q.Value() != 1 {
			t.Fatalf("not mutated: %v", d.Spec.Template.Spec.Containers[0].Resources)
		}
		return d.Generation
	}
	for _, mode := range []string{"--server-side=false", "--server-side=true"} {
		for i := 0; i < 2; i++ {
			out, err := exec.Command(kubectl, "--kubeconfig", kubeconfig, "apply", mode, "--force-conflicts="+fmt.Sprint(mode == "--server-side=true"), "-f", manifest).CombinedOutput()
			if err != nil {
				t.Fatalf("kubectl apply %s: %v\n%s", mode, err, out)
			}
		}
	}
	if g := generation(); g != 1 {
		t.Errorf("generation %d after four applies of the same manifest, want 1 (the webhook's UPDATE drifted)", g)
	}
}
