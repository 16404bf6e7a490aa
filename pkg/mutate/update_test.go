package mutate_test

import (
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

func example(t *testing.T, name string) client.Object {
	t.Helper()
	b, err := os.ReadFile("../../examples/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return decodeYAML(t, string(b))
}

// stored is obj as the API server keeps it after the webhook's CREATE.
func stored(t *testing.T, obj client.Object) client.Object {
	t.Helper()
	out, _ := run(t, obj, nil)
	return out
}

// reapplied is what kubectl apply or helm upgrade sends: the live object with the manifest's changes.
// Only annotations changed in the manifest, so everything Kaiwo added is still there.
func reapplied(live client.Object, set map[string]string, remove ...string) client.Object {
	o := live.DeepCopyObject().(client.Object)
	a := o.GetAnnotations()
	for k, v := range set {
		a[k] = v
	}
	for _, k := range remove {
		delete(a, k)
	}
	o.SetAnnotations(a)
	return o
}

func update(t *testing.T, obj, old client.Object) (client.Object, []string, error) {
	t.Helper()
	out, err := mutateIn(mutate.Input{Object: obj, Old: old, User: "bob@example.com"})
	if err != nil {
		return nil, nil, err
	}
	return out.Object, out.Warnings, nil
}

func deploymentContainer(o client.Object) corev1.Container {
	return o.(*appsv1.Deployment).Spec.Template.Spec.Containers[0]
}

// TestUpdateChangesWhatKaiwoPlaced: on UPDATE of a Deployment, Kaiwo's own earlier values follow the
// annotations: a changed gpus changes the GPU limit, CPU and memory and NUM_GPUS; a removed env entry
// or workload-configmap removes the env var or the volume and its mount.
func TestUpdateChangesWhatKaiwoPlaced(t *testing.T) {
	dep := example(t, "deployment.yaml")
	dep.GetAnnotations()[annotations.Env] = "envVars:\n- {name: MODEL, value: llama}\n- {name: MODE, value: serve}\n"
	live := stored(t, dep)

	t.Run("gpus 1 to 2", func(t *testing.T) {
		out, w, err := update(t, reapplied(live, map[string]string{annotations.GPUs: "2"}), live)
		if err != nil {
			t.Fatalf("denied: %v", err)
		}
		c := deploymentContainer(out)
		wantGPUs(t, c, nvidia, 2, "8", "64Gi")
		if env := envOf(c); env["NUM_GPUS"] != "2" || env["NUM_GPUS_PER_REPLICA"] != "2" {
			t.Errorf("env %v", env)
		}
		if !strings.Contains(strings.Join(w, "\n"), "2 nvidia.com/gpu on container vllm") {
			t.Errorf("warnings %q do not say what changed", w)
		}
		for _, noise := range []string{"mounted", "/dev/shm", "imagePullSecret"} {
			if strings.Contains(strings.Join(w, "\n"), noise) {
				t.Errorf("warnings %q speak of %s, which did not change", w, noise)
			}
		}
		// and back: the second UPDATE sees the first's record
		back, _, err := update(t, reapplied(out, map[string]string{annotations.GPUs: "1"}), out)
		if err != nil {
			t.Fatalf("back to 1 denied: %v", err)
		}
		if diff := cmp.Diff(live, back); diff != "" {
			t.Errorf("2 then 1 is not the object of 1 (-want,+got):\n%s", diff)
		}
	})
	t.Run("gpus removed", func(t *testing.T) {
		out, _, err := update(t, reapplied(live, nil, annotations.GPUs), live)
		if err != nil {
			t.Fatalf("denied: %v", err)
		}
		c := deploymentContainer(out)
		if len(c.Resources.Limits)+len(c.Resources.Requests) != 0 {
			t.Errorf("Kaiwo's resources left behind: %v", c.Resources)
		}
	})
	t.Run("env entry removed", func(t *testing.T) {
		out, _, err := update(t, reapplied(live, map[string]string{annotations.Env: "envVars:\n- {name: MODEL, value: llama}\n"}), live)
		if err != nil {
			t.Fatalf("denied: %v", err)
		}
		env := envOf(deploymentContainer(out))
		if _, ok := env["MODE"]; ok || env["MODEL"] != "llama" {
			t.Errorf("env %v: want MODEL kept and MODE removed", env)
		}
	})
	t.Run("env value changed", func(t *testing.T) {
		out, _, err := update(t, reapplied(live, map[string]string{annotations.Env: "envVars:\n- {name: MODEL, value: mistral}\n- {name: MODE, value: serve}\n"}), live)
		if err != nil {
			t.Fatalf("denied: %v", err)
		}
		if env := envOf(deploymentContainer(out)); env["MODEL"] != "mistral" {
			t.Errorf("env %v", env)
		}
	})
	t.Run("workload-configmap removed", func(t *testing.T) {
		out, _, err := update(t, reapplied(live, nil, annotations.WorkloadConfigMap), live)
		if err != nil {
			t.Fatalf("denied: %v", err)
		}
		ps := out.(*appsv1.Deployment).Spec.Template.Spec
		if slices.ContainsFunc(ps.Volumes, func(v corev1.Volume) bool { return v.Name == "kaiwo-workload" }) {
			t.Errorf("volume kaiwo-workload left behind: %v", ps.Volumes)
		}
		if slices.ContainsFunc(ps.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/workload/app" }) {
			t.Errorf("mount /workload/app left behind")
		}
	})
	t.Run("unchanged re-apply changes nothing, a user env var added after Kaiwo's stays in place", func(t *testing.T) {
		next := reapplied(live, nil)
		c := &next.(*appsv1.Deployment).Spec.Template.Spec.Containers[0]
		c.Env = append(c.Env, corev1.EnvVar{Name: "USER_VAR", Value: "x"})
		out, w, err := update(t, next, live)
		if err != nil {
			t.Fatalf("denied: %v", err)
		}
		if diff := cmp.Diff(next, out); diff != "" || len(w) > 0 {
			t.Errorf("changed (-sent,+mutated):\n%s\nwarnings %q", diff, w)
		}
	})
}

// TestUpdateKeepsWhatTheUserWrote: values that are not Kaiwo's still conflict on UPDATE.
func TestUpdateKeepsWhatTheUserWrote(t *testing.T) {
	live := stored(t, example(t, "deployment.yaml"))

	t.Run("a GPU limit the user changed", func(t *testing.T) {
		next := reapplied(live, nil)
		c := &next.(*appsv1.Deployment).Spec.Template.Spec.Containers[0]
		c.Resources.Limits[nvidia] = resource.MustParse("3")
		_, _, err := update(t, next, live)
		wantConflict(t, err, "resources.limits[nvidia.com/gpu]", `"3"`, "conflicts with the 1 nvidia.com/gpu")
	})
	t.Run("a GPU limit the user wrote from the start", func(t *testing.T) {
		own := example(t, "deployment.yaml").(*appsv1.Deployment)
		own.Spec.Template.Spec.Containers[0].Resources.Limits = corev1.ResourceList{nvidia: resource.MustParse("1")}
		ownLive := stored(t, own)
		_, _, err := update(t, reapplied(ownLive, map[string]string{annotations.GPUs: "2"}), ownLive)
		wantConflict(t, err, "resources.limits[nvidia.com/gpu]", `"1"`, "conflicts with the 2 nvidia.com/gpu")
	})
	t.Run("a record forged in the new object does not count", func(t *testing.T) {
		own := example(t, "deployment.yaml").(*appsv1.Deployment)
		own.Spec.Template.Spec.Containers[0].Resources.Limits = corev1.ResourceList{nvidia: resource.MustParse("1")}
		ownLive := stored(t, own)
		next := reapplied(ownLive, map[string]string{annotations.GPUs: "2", annotations.Applied: live.GetAnnotations()[annotations.Applied]})
		_, _, err := update(t, next, ownLive)
		wantConflict(t, err, "resources.limits[nvidia.com/gpu]", "conflicts with the 2 nvidia.com/gpu")
	})
	t.Run("a record forged on create does not count", func(t *testing.T) {
		own := example(t, "deployment.yaml").(*appsv1.Deployment)
		own.Spec.Template.Spec.Containers[0].Resources.Limits = corev1.ResourceList{nvidia: resource.MustParse("1")}
		own.Annotations[annotations.Applied] = live.GetAnnotations()[annotations.Applied]
		created, err := mutateIn(mutate.Input{Object: own, Create: true})
		if err != nil {
			t.Fatal(err)
		}
		if rec := created.Object.GetAnnotations()[annotations.Applied]; strings.Contains(rec, "limits/nvidia.com/gpu") {
			t.Errorf("the forged record was kept: %s", rec)
		}
		_, _, err = update(t, reapplied(created.Object, map[string]string{annotations.GPUs: "2"}), created.Object)
		wantConflict(t, err, "resources.limits[nvidia.com/gpu]", "conflicts with the 2 nvidia.com/gpu")
	})
	t.Run("an env var the user set by the same name", func(t *testing.T) {
		next := reapplied(live, map[string]string{annotations.GPUs: "2"})
		c := &next.(*appsv1.Deployment).Spec.Template.Spec.Containers[0]
		for i := range c.Env {
			if c.Env[i].Name == "NUM_GPUS" {
				c.Env[i].Value = "7"
			}
		}
		_, _, err := update(t, next, live)
		wantConflict(t, err, "NUM_GPUS=7", "(NUM_GPUS=2)")
	})
	t.Run("a volume the user changed under Kaiwo's name", func(t *testing.T) {
		next := reapplied(live, nil, annotations.WorkloadConfigMap)
		ps := &next.(*appsv1.Deployment).Spec.Template.Spec
		for i := range ps.Volumes {
			if ps.Volumes[i].Name == "kaiwo-workload" {
				ps.Volumes[i].ConfigMap.Name = "mine"
			}
		}
		out, _, err := update(t, next, live)
		if err != nil {
			t.Fatalf("denied: %v", err)
		}
		if !slices.ContainsFunc(out.(*appsv1.Deployment).Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == "kaiwo-workload" }) {
			t.Errorf("the user's changed volume was removed")
		}
	})
}

func wantConflict(t *testing.T, err error, want ...string) {
	t.Helper()
	var d *mutate.Denial
	if !errors.As(err, &d) {
		t.Fatalf("got %v, want a denial", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("message %q lacks %q", shortMsg(err.Error()), w)
		}
	}
}

// TestUpdateRayService: the worker plan follows a changed total; Kaiwo's earlier GPUs are not a conflict.
func TestUpdateRayService(t *testing.T) {
	rs := exampleRayService(t)
	live := stored(t, rs)
	out, _, err := update(t, reapplied(live, map[string]string{annotations.GPUs: "4"}, annotations.WorkloadConfigMap), live)
	if err != nil {
		t.Fatalf("denied: %v", err)
	}
	g := out.(*rayv1.RayService).Spec.RayClusterSpec.WorkerGroupSpecs[0]
	if *g.Replicas != 1 {
		t.Errorf("workers %d, want 1", *g.Replicas)
	}
	wantGPUs(t, g.Template.Spec.Containers[0], amd, 4, "16", "128Gi")
	for _, tpl := range []corev1.PodTemplateSpec{out.(*rayv1.RayService).Spec.RayClusterSpec.HeadGroupSpec.Template, g.Template} {
		if slices.ContainsFunc(tpl.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == "kaiwo-workload" }) {
			t.Errorf("volume kaiwo-workload left behind")
		}
		if envOf(tpl.Spec.Containers[0])["NUM_GPUS"] != "4" {
			t.Errorf("NUM_GPUS %q", envOf(tpl.Spec.Containers[0])["NUM_GPUS"])
		}
	}
}

// TestRecordIsBoundedAndNamesOnly: the record has names, never values, and stays small.
func TestRecordIsBoundedAndNamesOnly(t *testing.T) {
	dep := example(t, "deployment.yaml")
	dep.GetAnnotations()[annotations.Env] = "envVars:\n- {name: SECRET_LOOKING, value: s3cr3t-value}\n"
	rec := stored(t, dep).GetAnnotations()[annotations.Applied]
	if strings.Contains(rec, "s3cr3t-value") || strings.Contains(rec, "vllm-config") || !strings.Contains(rec, "SECRET_LOOKING") {
		t.Errorf("record %s: want names, no values", rec)
	}
	var env strings.Builder
	env.WriteString("envVars:\n")
	for i := range 1000 {
		env.WriteString("- {name: VARIABLE_WITH_A_LONG_NAME_" + itoa(int32(i)) + ", value: x}\n")
	}
	dep.GetAnnotations()[annotations.Env] = env.String()
	rec = stored(t, dep).GetAnnotations()[annotations.Applied]
	var a mutate.Applied
	if err := json.Unmarshal([]byte(rec), &a); err != nil || len(rec) > 10*1024 || a.Placed != nil {
		t.Errorf("record of %d bytes, placed %v, err %v: want it bounded, without the placed part", len(rec), a.Placed != nil, err)
	}
}

// TestUpdateGPUModel: a changed gpu-model replaces Kaiwo's node affinity expression instead of adding a
// second one no node matches; a removed one removes it, and the empty affinity with it.
func TestUpdateGPUModel(t *testing.T) {
	rs := exampleRayService(t)
	live := stored(t, rs)
	worker := func(o client.Object) corev1.PodSpec {
		return o.(*rayv1.RayService).Spec.RayClusterSpec.WorkerGroupSpecs[0].Template.Spec
	}
	out, _, err := update(t, reapplied(live, map[string]string{annotations.GPUModel: "MI250X"}), live)
	if err != nil {
		t.Fatalf("denied: %v", err)
	}
	terms := worker(out).Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	want := []corev1.NodeSelectorRequirement{{Key: "amd.com/gpu.product-name", Operator: corev1.NodeSelectorOpIn, Values: []string{"MI250X"}}}
	if len(terms) != 1 || !cmp.Equal(terms[0].MatchExpressions, want) {
		t.Errorf("terms %+v, want only %+v", terms, want)
	}
	out, _, err = update(t, reapplied(live, nil, annotations.GPUModel), live)
	if err != nil {
		t.Fatalf("denied: %v", err)
	}
	if a := worker(out).Affinity; a != nil {
		t.Errorf("affinity left behind: %+v", a)
	}
	// An expression the user wrote on the same label is theirs: it stays, and Kaiwo's is added to it.
	own := rs.DeepCopy()
	own.Spec.RayClusterSpec.WorkerGroupSpecs[0].Template.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "amd.com/gpu.product-name", Operator: corev1.NodeSelectorOpIn, Values: []string{"MI300X", "MI325X"}}}}}}}}
	ownLive := stored(t, own)
	out, _, err = update(t, reapplied(ownLive, nil, annotations.GPUModel), ownLive)
	if err != nil {
		t.Fatalf("denied: %v", err)
	}
	if es := worker(out).Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions; len(es) != 1 || len(es[0].Values) != 2 {
		t.Errorf("the user's expression changed or Kaiwo's stayed: %+v", es)
	}
}

// TestUpdateKeepsTheUsersToleration: a toleration the user wrote on the key of the policy's own stays
// on UPDATE; the policy's follows the policy.
func TestUpdateKeepsTheUsersToleration(t *testing.T) {
	pol := policy.Default()
	pol.Defaults.Tolerations = []corev1.Toleration{{Key: "amd.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
	dep := example(t, "deployment.yaml").(*appsv1.Deployment)
	mine := corev1.Toleration{Key: "amd.com/gpu", Operator: corev1.TolerationOpEqual, Value: "shared", Effect: corev1.TaintEffectNoSchedule}
	dep.Spec.Template.Spec.Tolerations = []corev1.Toleration{mine}
	live, _ := run(t, dep, pol)
	if n := len(live.(*appsv1.Deployment).Spec.Template.Spec.Tolerations); n != 2 {
		t.Fatalf("%d tolerations after create, want the user's and the policy's", n)
	}
	changed := policy.Default()
	changed.Defaults.Tolerations = nil
	out, err := mutateIn(mutate.Input{Object: reapplied(live, nil), Old: live, Policy: changed})
	if err != nil {
		t.Fatal(err)
	}
	if got := out.Object.(*appsv1.Deployment).Spec.Template.Spec.Tolerations; !cmp.Equal(got, []corev1.Toleration{mine}) {
		t.Errorf("tolerations %+v, want only the user's", got)
	}
}

func exampleRayService(t *testing.T) *rayv1.RayService {
	t.Helper()
	b, err := os.ReadFile("../../examples/rayservice.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rs := &rayv1.RayService{}
	if err := yaml.UnmarshalStrict(b, rs); err != nil {
		t.Fatal(err)
	}
	return rs
}
