package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/server"
)

// kubectlApply applies manifest with the envtest kubectl, client-side or server-side.
func kubectlApply(t *testing.T, kubeconfig, manifest string, serverSide bool) (string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--kubeconfig", kubeconfig, "apply", "-f", path}
	if serverSide {
		args = append(args, "--server-side", "--force-conflicts")
	}
	out, err := exec.Command(filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl"), args...).CombinedOutput()
	return string(out), err
}

func deploymentManifest(name, annots, resources string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ` + name + `
  namespace: it-update
  annotations:
    kaiwo.silogen.ai/gpu-vendor: nvidia
` + annots + `spec:
  replicas: 1
  selector: {matchLabels: {app: ` + name + `}}
  template:
    metadata: {labels: {app: ` + name + `}}
    spec:
      containers:
        - name: server
          image: vllm/vllm-openai:latest` + resources + `
`
}

const updateEnv = `    kaiwo.silogen.ai/env: |
      envVars:
        - {name: MODEL, value: llama}
`

func rayServiceManifest(name, annots string) string {
	return `apiVersion: ray.io/v1
kind: RayService
metadata:
  name: ` + name + `
  namespace: it-update
  annotations:
` + annots + `spec:
  serveConfigV2: |
    applications: [{name: llm, import_path: "serve:app"}]
  rayClusterConfig:
    headGroupSpec:
      rayStartParams: {}
      template:
        spec:
          containers: [{name: ray-head, image: "rocm/ray:latest"}]
    workerGroupSpecs:
      - groupName: gpu
        rayStartParams: {}
        template:
          spec:
            containers: [{name: ray-worker, image: "rocm/ray:latest"}]
`
}

func hasVolume(ps corev1.PodSpec, name string) bool {
	return slices.ContainsFunc(ps.Volumes, func(v corev1.Volume) bool { return v.Name == name })
}

func hasMount(c corev1.Container, path string) bool {
	return slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == path })
}

func envMap(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

// TestReapplyWithChangedAnnotations: a Deployment and a RayService applied, then applied again with
// gpus changed, an env entry removed and the workload-configmap annotation removed, by client-side
// and by server-side apply: each change is in the stored object and nothing of Kaiwo's is left behind.
// A GPU limit the user writes that disagrees is still denied.
func TestReapplyWithChangedAnnotations(t *testing.T) {
	ctx := context.Background()
	namespace(t, "it-update", nil)
	kubeconfig := writeKubeconfig(t)
	for _, serverSide := range []bool{false, true} {
		mode := map[bool]string{false: "client-side", true: "server-side"}[serverSide]
		t.Run("Deployment "+mode, func(t *testing.T) {
			name := "llm-" + strings.Split(mode, "-")[0]
			first := deploymentManifest(name, `    kaiwo.silogen.ai/gpus: "1"
    kaiwo.silogen.ai/workload-configmap: app
    kaiwo.silogen.ai/env: |
      envVars:
        - {name: MODEL, value: llama}
        - {name: MODE, value: serve}
`, "")
			if out, err := kubectlApply(t, kubeconfig, first, serverSide); err != nil {
				t.Fatalf("first apply: %v\n%s", err, out)
			}
			second := deploymentManifest(name, "    kaiwo.silogen.ai/gpus: \"2\"\n"+updateEnv, "")
			if out, err := kubectlApply(t, kubeconfig, second, serverSide); err != nil {
				t.Fatalf("second apply: %v\n%s", err, out)
			}
			var d appsv1.Deployment
			if err := k8s.Get(ctx, types.NamespacedName{Namespace: "it-update", Name: name}, &d); err != nil {
				t.Fatal(err)
			}
			c := d.Spec.Template.Spec.Containers[0]
			for _, rl := range []corev1.ResourceList{c.Resources.Limits, c.Resources.Requests} {
				if q := rl["nvidia.com/gpu"]; q.Value() != 2 || rl.Cpu().String() != "8" || rl.Memory().String() != "64Gi" {
					t.Errorf("resources %v, want 2 GPUs, 8 CPU, 64Gi", rl)
				}
			}
			env := envMap(c)
			if _, ok := env["MODE"]; ok || env["MODEL"] != "llama" || env["NUM_GPUS"] != "2" {
				t.Errorf("env %v: want MODEL, NUM_GPUS=2 and no MODE", env)
			}
			if hasVolume(d.Spec.Template.Spec, "kaiwo-workload") || hasMount(c, "/workload/app") {
				t.Errorf("the code volume or its mount is left behind")
			}
			if rec := d.Annotations[annotations.Applied]; strings.Contains(rec, "kaiwo-workload") || strings.Contains(rec, `"MODE"`) {
				t.Errorf("the record still lists what was removed: %s", rec)
			}
			// The user's own GPU limit that disagrees with the annotation is denied as on create.
			third := deploymentManifest(name, "    kaiwo.silogen.ai/gpus: \"2\"\n"+updateEnv, `
          resources:
            limits: {nvidia.com/gpu: "3"}`)
			out, err := kubectlApply(t, kubeconfig, third, serverSide)
			if err == nil || !strings.Contains(out, "conflicts with the 2 nvidia.com/gpu") || !strings.Contains(out, `"3"`) {
				t.Errorf("want a conflict denial, got %v:\n%s", err, out)
			}
		})
		t.Run("RayService "+mode, func(t *testing.T) {
			name := "serve-" + strings.Split(mode, "-")[0]
			first := rayServiceManifest(name, "    kaiwo.silogen.ai/gpus: \"16\"\n    kaiwo.silogen.ai/workload-configmap: app\n"+updateEnv+"        - {name: MODE, value: serve}\n")
			if out, err := kubectlApply(t, kubeconfig, first, serverSide); err != nil {
				t.Fatalf("first apply: %v\n%s", err, out)
			}
			if out, err := kubectlApply(t, kubeconfig, rayServiceManifest(name, "    kaiwo.silogen.ai/gpus: \"4\"\n"+updateEnv), serverSide); err != nil {
				t.Fatalf("second apply: %v\n%s", err, out)
			}
			var rs rayv1.RayService
			if err := rayClient(t).Get(ctx, types.NamespacedName{Namespace: "it-update", Name: name}, &rs); err != nil {
				t.Fatal(err)
			}
			cl := rs.Spec.RayClusterSpec
			g := cl.WorkerGroupSpecs[0]
			if g.Replicas == nil || *g.Replicas != 1 {
				t.Errorf("worker replicas %v, want 1", g.Replicas)
			}
			w := g.Template.Spec.Containers[0]
			if q := w.Resources.Limits["amd.com/gpu"]; q.Value() != 4 {
				t.Errorf("worker GPUs %v, want 4", w.Resources.Limits)
			}
			for _, tpl := range []corev1.PodTemplateSpec{cl.HeadGroupSpec.Template, g.Template} {
				c := tpl.Spec.Containers[0]
				env := envMap(c)
				if _, ok := env["MODE"]; ok || env["NUM_GPUS"] != "4" || env["MODEL"] != "llama" {
					t.Errorf("%s env %v", c.Name, env)
				}
				if hasVolume(tpl.Spec, "kaiwo-workload") || hasMount(c, "/workload/app") {
					t.Errorf("%s: the code volume or its mount is left behind", c.Name)
				}
			}
		})
	}
}

func rayClient(t *testing.T) client.Client {
	t.Helper()
	s := server.Scheme()
	if err := rayv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestStorageReapplyDoesNotDrift: a Deployment with the workload volume, applied again unchanged, keeps
// its generation: what the API server defaults in the volume's claim template agrees with Kaiwo's.
func TestStorageReapplyDoesNotDrift(t *testing.T) {
	namespace(t, "it-storage", nil)
	kubeconfig := writeKubeconfig(t)
	manifest := strings.Replace(deploymentManifest("store", "    kaiwo.silogen.ai/gpus: \"1\"\n    kaiwo.silogen.ai/storage: 100Gi\n    kaiwo.silogen.ai/workload-configmap: app\n", ""),
		"namespace: it-update", "namespace: it-storage", 1)
	for _, serverSide := range []bool{false, false, true, true} {
		if out, err := kubectlApply(t, kubeconfig, manifest, serverSide); err != nil {
			t.Fatalf("apply: %v\n%s", err, out)
		}
	}
	var d appsv1.Deployment
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: "it-storage", Name: "store"}, &d); err != nil {
		t.Fatal(err)
	}
	ps := d.Spec.Template.Spec
	if !hasVolume(ps, "kaiwo-storage") || !hasMount(ps.Containers[0], "/workload") || !hasMount(ps.Containers[0], "/workload/mounted") {
		t.Fatalf("no workload volume at /workload with the code beneath: %+v", ps.Volumes)
	}
	if d.Generation != 1 {
		t.Errorf("generation %d after four applies of the same manifest, want 1", d.Generation)
	}
	// Removing the storage annotation removes the volume, its mount and HF_HOME.
	plain := strings.Replace(manifest, "    kaiwo.silogen.ai/storage: 100Gi\n", "", 1)
	if out, err := kubectlApply(t, kubeconfig, plain, false); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: "it-storage", Name: "store"}, &d); err != nil {
		t.Fatal(err)
	}
	ps = d.Spec.Template.Spec
	if hasVolume(ps, "kaiwo-storage") || hasMount(ps.Containers[0], "/workload") || envMap(ps.Containers[0])["HF_HOME"] != "" || !hasMount(ps.Containers[0], "/workload/app") {
		t.Errorf("storage left behind or the code not back at /workload/app: volumes %v, mounts %v", ps.Volumes, ps.Containers[0].VolumeMounts)
	}
}
