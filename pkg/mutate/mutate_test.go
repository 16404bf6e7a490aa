package mutate_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	. "github.com/silogen/kaiwo-webhook/internal/testobj"
	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

const (
	amd    corev1.ResourceName = "amd.com/gpu"
	nvidia corev1.ResourceName = "nvidia.com/gpu"
)

func run(t *testing.T, obj client.Object, pol *policy.Policy) (client.Object, []string) {
	t.Helper()
	out, err := mutateIn(mutate.Input{Object: obj, Policy: pol, User: "alice@example.com"})
	if err != nil {
		t.Fatalf("Mutate: %v", err)
	}
	return out.Object, out.Warnings
}

func envOf(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

// wantGPUs asserts n GPUs of r with requests equal to limits, and the per-GPU CPU and memory.
func wantGPUs(t *testing.T, c corev1.Container, r corev1.ResourceName, n int64, cpu, mem string) {
	t.Helper()
	for _, rl := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
		if q := rl[r]; q.Value() != n {
			t.Errorf("container %s: %s = %s, want %d", c.Name, r, q.String(), n)
		}
		if cpu != "" && rl.Cpu().Cmp(resource.MustParse(cpu)) != 0 {
			t.Errorf("container %s: cpu = %s, want %s", c.Name, rl.Cpu(), cpu)
		}
		if mem != "" && rl.Memory().Cmp(resource.MustParse(mem)) != 0 {
			t.Errorf("container %s: memory = %s, want %s", c.Name, rl.Memory(), mem)
		}
	}
}

func noGPUs(t *testing.T, c corev1.Container) {
	t.Helper()
	for _, r := range []corev1.ResourceName{amd, nvidia} {
		if _, ok := c.Resources.Limits[r]; ok {
			t.Errorf("container %s got %s", c.Name, r)
		}
	}
}

func hasMount(c corev1.Container, path string) bool {
	for _, m := range c.VolumeMounts {
		if m.MountPath == path {
			return true
		}
	}
	return false
}

func TestMutateJob(t *testing.T) {
	cases := map[string]struct {
		obj   *batchv1.Job
		pol   *policy.Policy
		check func(t *testing.T, j *batchv1.Job, warnings []string)
	}{
		"gpus, queue, suspend, ttl, env counts, labels": {
			obj: MakeJob("train", "ml").Annotate(annotations.GPUs, "4").Obj(),
			check: func(t *testing.T, j *batchv1.Job, w []string) {
				wantGPUs(t, j.Spec.Template.Spec.Containers[0], amd, 4, "16", "128Gi")
				if !ptr.Deref(j.Spec.Suspend, false) {
					t.Error("not suspended")
				}
				want := map[string]string{annotations.KueueQueueName: "kaiwo", annotations.Managed: "true", annotations.User: "alice-example.com"}
				if diff := cmp.Diff(want, j.Labels); diff != "" {
					t.Errorf("labels (-want,+got):\n%s", diff)
				}
				if got := ptr.Deref(j.Spec.TTLSecondsAfterFinished, -1); got != 3600 {
					t.Errorf("ttl = %d, want 3600", got)
				}
				env := envOf(j.Spec.Template.Spec.Containers[0])
				if env["NUM_GPUS"] != "4" || env["NUM_REPLICAS"] != "1" || env["NUM_GPUS_PER_REPLICA"] != "4" {
					t.Errorf("NUM_* env = %v", env)
				}
				if !hasMount(j.Spec.Template.Spec.Containers[0], "/dev/shm") {
					t.Error("no /dev/shm")
				}
				var rec mutate.Applied
				if err := json.Unmarshal([]byte(j.Annotations[annotations.Applied]), &rec); err != nil || rec.Policy != policy.BuiltinName {
					t.Errorf("applied record %q: %v", j.Annotations[annotations.Applied], err)
				}
				if len(w) == 0 {
					t.Error("no warnings")
				}
			},
		},
		"init containers and sidecars get nothing; only the first app container gets GPUs": {
			obj: MakeJob("j", "ml").InitContainer("setup", false).InitContainer("proxy", true).Container("logger").
				Annotate(annotations.GPUs, "2").Obj(),
			check: func(t *testing.T, j *batchv1.Job, _ []string) {
				ps := j.Spec.Template.Spec
				wantGPUs(t, ps.Containers[0], amd, 2, "8", "64Gi")
				noGPUs(t, ps.Containers[1])
				if envOf(ps.Containers[1])["NUM_GPUS"] != "2" {
					t.Error("second app container lacks NUM_GPUS")
				}
				for _, c := range ps.InitContainers {
					noGPUs(t, c)
					if len(c.Env) > 0 || len(c.VolumeMounts) > 0 {
						t.Errorf("init container %s was changed: %+v", c.Name, c)
					}
				}
			},
		},
		"container annotation picks the GPU container": {
			obj: MakeJob("j", "ml").Container("trainer").Annotate(annotations.GPUs, "1").Annotate(annotations.Container, "trainer").Obj(),
			check: func(t *testing.T, j *batchv1.Job, _ []string) {
				noGPUs(t, j.Spec.Template.Spec.Containers[0])
				wantGPUs(t, j.Spec.Template.Spec.Containers[1], amd, 1, "4", "32Gi")
			},
		},
		"nvidia vendor": {
			obj: MakeJob("j", "ml").Annotate(annotations.GPUs, "1").Annotate(annotations.GPUVendor, "nvidia").Obj(),
			check: func(t *testing.T, j *batchv1.Job, _ []string) {
				wantGPUs(t, j.Spec.Template.Spec.Containers[0], nvidia, 1, "4", "32Gi")
			},
		},
		"a queue label the user set is kept without a queue annotation": {
			obj: MakeJob("j", "ml").Label(annotations.KueueQueueName, "mine").Annotate(annotations.GPUs, "1").Obj(),
			check: func(t *testing.T, j *batchv1.Job, _ []string) {
				if q := j.Labels[annotations.KueueQueueName]; q != "mine" {
					t.Errorf("queue = %q, want mine", q)
				}
			},
		},
		"a CPU limit the user set becomes the request too; memory is filled": {
			obj: func() *batchv1.Job {
				j := MakeJob("j", "ml").Annotate(annotations.GPUs, "2").Obj()
				j.Spec.Template.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("3")}
				return j
			}(),
			check: func(t *testing.T, j *batchv1.Job, _ []string) {
				wantGPUs(t, j.Spec.Template.Spec.Containers[0], amd, 2, "3", "64Gi")
			},
		},
		"containers without resources, zero GPUs: no GPU resource, env says 0": {
			obj: MakeJob("j", "ml").Annotate(annotations.GPUs, "0").Obj(),
			check: func(t *testing.T, j *batchv1.Job, _ []string) {
				c := j.Spec.Template.Spec.Containers[0]
				noGPUs(t, c)
				if c.Resources.Limits.Cpu().Value() != 0 {
					t.Errorf("cpu set for 0 GPUs: %v", c.Resources)
				}
				if envOf(c)["NUM_GPUS"] != "0" {
					t.Error("NUM_GPUS != 0")
				}
			},
		},
		"queueing none: no label, no suspend": {
			obj: MakeJob("j", "ml").Annotate(annotations.Queueing, "none").Obj(),
			check: func(t *testing.T, j *batchv1.Job, _ []string) {
				if _, ok := j.Labels[annotations.KueueQueueName]; ok || j.Spec.Suspend != nil {
					t.Errorf("queued anyway: labels %v suspend %v", j.Labels, j.Spec.Suspend)
				}
			},
		},
		"empty namespace": {
			obj: MakeJob("j", "").Annotate(annotations.GPUs, "1").Obj(),
			check: func(t *testing.T, j *batchv1.Job, _ []string) {
				wantGPUs(t, j.Spec.Template.Spec.Containers[0], amd, 1, "4", "32Gi")
				if j.Namespace != "" {
					t.Errorf("namespace set to %q", j.Namespace)
				}
			},
		},
		"gpu model, pull secret, code, priority": {
			obj: MakeJob("j", "ml").Annotate(annotations.GPUs, "8").Annotate(annotations.GPUModel, "MI300X").
				Annotate(annotations.ImagePullSecret, "regcred").Annotate(annotations.WorkloadConfigMap, "code").
				Annotate(annotations.PriorityClass, "high").Obj(),
			check: func(t *testing.T, j *batchv1.Job, _ []string) {
				ps := j.Spec.Template.Spec
				term := ps.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0]
				want := corev1.NodeSelectorRequirement{Key: "amd.com/gpu.product-name", Operator: corev1.NodeSelectorOpIn, Values: []string{"MI300X"}}
				if diff := cmp.Diff([]corev1.NodeSelectorRequirement{want}, term.MatchExpressions); diff != "" {
					t.Errorf("affinity (-want,+got):\n%s", diff)
				}
				if len(ps.ImagePullSecrets) != 1 || ps.ImagePullSecrets[0].Name != "regcred" {
					t.Errorf("imagePullSecrets = %v", ps.ImagePullSecrets)
				}
				if !hasMount(ps.Containers[0], "/workload") {
					t.Error("code not at /workload")
				}
				if j.Labels[annotations.KueuePriorityClass] != "high" {
					t.Errorf("priority label = %q", j.Labels[annotations.KueuePriorityClass])
				}
			},
		},
		"policy tolerations and nodeSelector": {
			obj: MakeJob("j", "ml").Annotate(annotations.GPUs, "1").Obj(),
			pol: func() *policy.Policy {
				p := policy.Default()
				p.Defaults.Tolerations = []corev1.Toleration{{Key: "amd.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
				p.Defaults.NodeSelector = map[string]string{"node-pool": "gpu"}
				return p
			}(),
			check: func(t *testing.T, j *batchv1.Job, _ []string) {
				ps := j.Spec.Template.Spec
				if len(ps.Tolerations) != 1 || ps.NodeSelector["node-pool"] != "gpu" {
					t.Errorf("tolerations %v nodeSelector %v", ps.Tolerations, ps.NodeSelector)
				}
			},
		},
		"enforce: an unannotated GPU job is managed and queued": {
			obj: MakeJob("j", "ml").Resource(0, amd, "2").Obj(),
			pol: func() *policy.Policy { p := policy.Default(); p.Mode = policy.Enforce; return p }(),
			check: func(t *testing.T, j *batchv1.Job, _ []string) {
				if j.Labels[annotations.KueueQueueName] != "kaiwo" || !ptr.Deref(j.Spec.Suspend, false) {
					t.Errorf("not queued: %v %v", j.Labels, j.Spec.Suspend)
				}
				if envOf(j.Spec.Template.Spec.Containers[0])["NUM_GPUS"] != "2" {
					t.Error("NUM_GPUS from the existing request missing")
				}
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			out, w := run(t, tc.obj, tc.pol)
			tc.check(t, out.(*batchv1.Job), w)
			again, w2 := run(t, out, tc.pol)
			if diff := cmp.Diff(out, again); diff != "" {
				t.Errorf("second pass changed the object (-first,+second):\n%s", diff)
			}
			if len(w2) > 0 {
				t.Errorf("second pass warned: %q", w2)
			}
		})
	}
}

func TestUnmanagedPassesThrough(t *testing.T) {
	for name, obj := range map[string]client.Object{
		"plain job":               MakeJob("j", "ml").Obj(),
		"GPU job in OptIn":        MakeJob("j", "ml").Resource(0, amd, "8").Obj(),
		"other prefix annotation": MakeJob("j", "ml").Annotate("example.com/gpus", "4").Obj(),
	} {
		t.Run(name, func(t *testing.T) {
			out, err := mutateIn(mutate.Input{Object: obj})
			if err != nil || out.Managed || out.Object != obj {
				t.Errorf("managed=%v err=%v, want the same object back", out.Managed, err)
			}
		})
	}
	p := policy.Default()
	p.Mode = policy.Enforce
	out, err := mutateIn(mutate.Input{Object: MakeJob("cpu", "ml").Obj(), Policy: p})
	if err != nil || out.Managed {
		t.Errorf("enforce mode managed a CPU-only job: managed=%v err=%v", out.Managed, err)
	}
}

func TestMutateDeployment(t *testing.T) {
	d, _ := run(t, MakeDeployment("serve", "ml").Replicas(2).Annotate(annotations.GPUs, "1").Annotate(annotations.WorkloadConfigMap, "app").Obj(), nil)
	dep := d.(*appsv1.Deployment)
	if _, ok := dep.Labels[annotations.KueueQueueName]; ok {
		t.Error("deployment queued by default")
	}
	c := dep.Spec.Template.Spec.Containers[0]
	wantGPUs(t, c, amd, 1, "4", "32Gi")
	if !hasMount(c, "/workload/app") {
		t.Error("code not at /workload/app")
	}

	pq := policy.Default()
	pq.Defaults.ServingQueueing = mutate.QueueingKueue
	byPolicy, _ := run(t, MakeDeployment("serve", "ml").Annotate(annotations.GPUs, "1").Obj(), pq)
	if byPolicy.GetLabels()[annotations.KueueQueueName] != "kaiwo" {
		t.Errorf("servingQueueing: kueue did not queue the Deployment: %v", byPolicy.GetLabels())
	}

	q, _ := run(t, MakeDeployment("serve", "ml").Annotate(annotations.Queue, "serving").Obj(), nil)
	dep = q.(*appsv1.Deployment)
	if dep.Labels[annotations.KueueQueueName] != "serving" || dep.Spec.Template.Labels[annotations.KueueQueueName] != "serving" {
		t.Errorf("queue label on object %v, on template %v", dep.Labels, dep.Spec.Template.Labels)
	}
}

// TestStoredObjectIsNotChanged: on UPDATE the API server sends the stored object, with defaults filled
// in (defaultMode on ConfigMap and Secret volumes); the second pass must still be a no-op.
func TestStoredObjectIsNotChanged(t *testing.T) {
	d := MakeDeployment("serve", "ml").Annotate(annotations.GPUs, "1").Annotate(annotations.WorkloadConfigMap, "app").
		Annotate(annotations.Env, "envVars:\n- mountSecret: {name: C, secret: s, key: k, path: /etc/c}\n").Obj()
	first, _ := run(t, d, nil)
	stored := first.(*appsv1.Deployment).DeepCopy()
	for i := range stored.Spec.Template.Spec.Volumes {
		v := &stored.Spec.Template.Spec.Volumes[i]
		if v.ConfigMap != nil {
			v.ConfigMap.DefaultMode = ptr.To[int32](0o644)
		}
		if v.Secret != nil {
			v.Secret.DefaultMode = ptr.To[int32](0o644)
		}
	}
	again, w := run(t, stored, nil)
	if diff := cmp.Diff(stored, again); diff != "" || len(w) > 0 {
		t.Errorf("UPDATE of the stored object changed it (-stored,+got):\n%s\nwarnings %q", diff, w)
	}
}

func TestLabelSafe(t *testing.T) {
	cases := map[string]string{
		"alice":                               "alice",
		"alice@example.com":                   "alice-example.com",
		"system:serviceaccount:kaiwo:default": "system-serviceaccount-kaiwo-default",
		"":                                    "",
		"-weird-":                             "weird",
		strings.Repeat("a", 70):               strings.Repeat("a", 54) + "-",
		"oidc:https://issuer.example.com#bob@x.y": "oidc-https-issuer.example.com-bob-x.y",
	}
	for in, want := range cases {
		got := mutate.LabelSafe(in)
		if strings.HasSuffix(want, "-") {
			if !strings.HasPrefix(got, want) || len(got) != 63 {
				t.Errorf("LabelSafe(%q) = %q, want prefix %q and 63 chars", in, got, want)
			}
			continue
		}
		if got != want {
			t.Errorf("LabelSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

func itoa(n int32) string { b, _ := json.Marshal(n); return string(b) }
