package mutate_test

import (
	"cmp"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"

	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
)

// rwPod is one pod template of a decoded workload, found without the core's adapters.
type rwPod struct {
	path string
	role string // head, worker, submitter or pod
	// pods is how many pods the template makes: Ray replicas x numOfHosts, Job parallelism, Deployment replicas.
	pods  int64
	group *rayv1.WorkerGroupSpec
	spec  *corev1.PodTemplateSpec
}

func rwPods(obj client.Object) []rwPod {
	cluster := func(prefix string, c *rayv1.RayClusterSpec) []rwPod {
		if c == nil {
			return nil
		}
		ps := []rwPod{{path: prefix + ".headGroupSpec.template", role: "head", pods: 1, spec: &c.HeadGroupSpec.Template}}
		for i := range c.WorkerGroupSpecs {
			g := &c.WorkerGroupSpecs[i]
			hosts := int64(max(g.NumOfHosts, 1))
			ps = append(ps, rwPod{path: fmt.Sprintf("%s.workerGroupSpecs[%d].template", prefix, i), role: "worker",
				pods: int64(ptr.Deref(g.Replicas, 0)) * hosts, group: g, spec: &g.Template})
		}
		return ps
	}
	switch o := obj.(type) {
	case *batchv1.Job:
		return []rwPod{{path: "spec.template", role: "pod", pods: int64(ptr.Deref(o.Spec.Parallelism, 1)), spec: &o.Spec.Template}}
	case *appsv1.Deployment:
		return []rwPod{{path: "spec.template", role: "pod", pods: int64(ptr.Deref(o.Spec.Replicas, 1)), spec: &o.Spec.Template}}
	case *rayv1.RayJob:
		ps := cluster("spec.rayClusterSpec", o.Spec.RayClusterSpec)
		if o.Spec.SubmitterPodTemplate != nil {
			ps = append(ps, rwPod{path: "spec.submitterPodTemplate", role: "submitter", pods: 1, spec: o.Spec.SubmitterPodTemplate})
		}
		return ps
	case *rayv1.RayService:
		return cluster("spec.rayClusterConfig", &o.Spec.RayClusterSpec)
	}
	return nil
}

var rwGPUResources = []corev1.ResourceName{"amd.com/gpu", "nvidia.com/gpu"}

// rwPodGPUs counts the GPUs of every vendor that one pod of t asks for (limits, else requests).
func rwPodGPUs(t *corev1.PodTemplateSpec) int64 {
	var n int64
	for _, c := range t.Spec.Containers {
		n += rwContainerGPUs(c)
	}
	return n
}

func rwContainerGPUs(c corev1.Container) int64 {
	var n int64
	for _, r := range rwGPUResources {
		if q, ok := c.Resources.Limits[r]; ok {
			n += q.Value()
		} else if q, ok := c.Resources.Requests[r]; ok {
			n += q.Value()
		}
	}
	return n
}

func rwDecodeObject(t testing.TB, raw []byte) client.Object {
	t.Helper()
	obj, _, err := kinds.Decode(raw)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return obj
}

func rwCheckObject(t *testing.T, tc rwCase, in, out []byte) {
	t.Helper()
	before, after := rwDecodeObject(t, in), rwDecodeObject(t, out)
	inPods, outPods := rwPods(before), rwPods(after)
	if len(inPods) != len(outPods) {
		t.Fatalf("the output has %d pod templates, the input %d", len(outPods), len(inPods))
	}
	kind, _ := kinds.ForObject(after)
	gpus, hasGPUs := int64(-1), false
	if v, ok := tc.annotations[annotations.GPUs]; ok {
		n, _ := strconv.ParseInt(v, 10, 64)
		gpus, hasGPUs = n, true
	}
	res := corev1.ResourceName("amd.com/gpu")
	if tc.annotations[annotations.GPUVendor] == "nvidia" {
		res = "nvidia.com/gpu"
	}
	ray := false
	switch after.(type) {
	case *rayv1.RayJob, *rayv1.RayService:
		ray = true
	}

	// GPUs: where they were asked for, as many as were asked for.
	if hasGPUs {
		var total int64
		for i, p := range outPods {
			n := rwPodGPUs(p.spec)
			switch {
			case p.role == "head" || p.role == "submitter":
				if was := rwPodGPUs(inPods[i].spec); n != was {
					t.Errorf("%s: the %s got GPUs: %d, was %d", p.path, p.role, n, was)
				}
			case ray:
				total += p.pods * n
				if n > 0 && (ptr.Deref(p.group.Replicas, -1) != ptr.Deref(p.group.MinReplicas, -2) || ptr.Deref(p.group.Replicas, -1) != ptr.Deref(p.group.MaxReplicas, -2)) {
					t.Errorf("%s: GPU worker group %q has replicas %v, min %v, max %v; want all equal", p.path, p.group.GroupName,
						rwDeref(p.group.Replicas), rwDeref(p.group.MinReplicas), rwDeref(p.group.MaxReplicas))
				}
			default:
				if n != gpus {
					t.Errorf("%s: %d GPUs per pod, want %d (kaiwo.silogen.ai/gpus)", p.path, n, gpus)
				}
			}
		}
		if ray && total != gpus {
			t.Errorf("the Ray workers' pods ask for %d GPUs in all (replicas x numOfHosts x GPUs per pod), want %d (kaiwo.silogen.ai/gpus)", total, gpus)
		}
	}

	// Requests equal limits on every GPU container, for the GPU, cpu and memory. A cpu or memory the
	// input set both ways differently is the user's and stays as it was (rwCheckPatch sees to that).
	for i, p := range outPods {
		for j, c := range p.spec.Spec.Containers {
			if rwContainerGPUs(c) == 0 {
				continue
			}
			orig := inPods[i].spec.Spec.Containers[j]
			for _, r := range []corev1.ResourceName{res, corev1.ResourceCPU, corev1.ResourceMemory} {
				req, hasReq := c.Resources.Requests[r]
				lim, hasLim := c.Resources.Limits[r]
				oreq, ohasReq := orig.Resources.Requests[r]
				olim, ohasLim := orig.Resources.Limits[r]
				if r != res && ohasReq && ohasLim && oreq.Cmp(olim) != 0 {
					continue
				}
				if !hasReq || !hasLim || req.Cmp(lim) != 0 {
					t.Errorf("%s container %s: %s request %s, limit %s; want both set and equal", p.path, c.Name, r, rwQ(hasReq, req.String()), rwQ(hasLim, lim.String()))
				}
			}
		}
	}

	// Env, Secret files and code in every container of every template.
	codePath := "/workload"
	if kind.Serving {
		codePath = "/workload/app"
	}
	for _, p := range outPods {
		for _, c := range p.spec.Spec.Containers {
			where := fmt.Sprintf("%s container %s", p.path, c.Name)
			env := map[string]corev1.EnvVar{}
			for _, e := range c.Env {
				env[e.Name] = e
			}
			for _, n := range []string{mutate.EnvNumGPUs, mutate.EnvNumReplicas, mutate.EnvNumGPUsPerReplica} {
				if _, ok := env[n]; !ok {
					t.Errorf("%s: no %s", where, n)
				}
			}
			if hasGPUs && env[mutate.EnvNumGPUs].Value != strconv.FormatInt(gpus, 10) {
				t.Errorf("%s: NUM_GPUS=%q, want %d", where, env[mutate.EnvNumGPUs].Value, gpus)
			}
			if tc.annotations[annotations.Env] != "" {
				if env["MODEL_ID"].Value != "meta-llama/Llama-3.1-8B" {
					t.Errorf("%s: MODEL_ID=%q", where, env["MODEL_ID"].Value)
				}
				if ref := env["HF_TOKEN"].ValueFrom; ref == nil || ref.SecretKeyRef == nil || ref.SecretKeyRef.Name != "hf-token" || ref.SecretKeyRef.Key != "hf-token" {
					t.Errorf("%s: HF_TOKEN is not from Secret hf-token key hf-token: %+v", where, env["HF_TOKEN"])
				}
				const credPath = "/etc/gcp/credentials.json"
				if env["GOOGLE_APPLICATION_CREDENTIALS"].Value != credPath {
					t.Errorf("%s: GOOGLE_APPLICATION_CREDENTIALS=%q, want %s", where, env["GOOGLE_APPLICATION_CREDENTIALS"].Value, credPath)
				}
				m, v := rwMount(p.spec, c, credPath)
				if m == nil || v == nil || v.Secret == nil || v.Secret.SecretName != "gcs-credentials" || m.SubPath != "gcs-credentials-json" || !m.ReadOnly {
					t.Errorf("%s: %s is not key gcs-credentials-json of Secret gcs-credentials, read-only: mount %+v, volume %+v", where, credPath, m, v)
				}
			}
			if cm := tc.annotations[annotations.WorkloadConfigMap]; cm != "" {
				m, v := rwMount(p.spec, c, codePath)
				if m == nil || v == nil || v.ConfigMap == nil || v.ConfigMap.Name != cm {
					t.Errorf("%s: %s is not ConfigMap %s: mount %+v, volume %+v", where, codePath, cm, m, v)
				}
			}
			if m, v := rwMount(p.spec, c, "/dev/shm"); m == nil || v == nil || v.EmptyDir == nil || v.EmptyDir.Medium != corev1.StorageMediumMemory {
				t.Errorf("%s: /dev/shm is not a memory-backed emptyDir: mount %+v, volume %+v", where, m, v)
			}
		}
	}

	// Queueing: the queue label and suspend come together.
	queued := kind.GVK.Kind == "Job" || kind.GVK.Kind == "RayJob"
	if q := tc.annotations[annotations.Queueing]; q != "" {
		queued = q == "kueue"
	}
	labels := after.GetLabels()
	if labels[annotations.Managed] != "true" {
		t.Errorf("label %s=%q, want true", annotations.Managed, labels[annotations.Managed])
	}
	wantQueue := before.GetLabels()[annotations.KueueQueueName]
	if queued {
		wantQueue = cmp.Or(tc.annotations[annotations.Queue], wantQueue, "kaiwo")
	}
	if got := labels[annotations.KueueQueueName]; got != wantQueue {
		t.Errorf("label %s=%q, want %q", annotations.KueueQueueName, got, wantQueue)
	}
	if queued {
		switch o := after.(type) {
		case *batchv1.Job:
			if !ptr.Deref(o.Spec.Suspend, false) {
				t.Error("a queued Job is not suspended")
			}
		case *rayv1.RayJob:
			if !o.Spec.Suspend || !o.Spec.ShutdownAfterJobFinishes {
				t.Errorf("a queued RayJob has suspend=%v, shutdownAfterJobFinishes=%v; want both true", o.Spec.Suspend, o.Spec.ShutdownAfterJobFinishes)
			}
			if ptr.Deref(o.Spec.RayClusterSpec.EnableInTreeAutoscaling, false) {
				t.Error("a queued RayJob autoscales")
			}
		case *rayv1.RayService:
			if !ptr.Deref(o.Spec.RayClusterSpec.Suspend, false) {
				t.Error("a queued RayService's cluster is not suspended")
			}
		case *appsv1.Deployment:
			if got := o.Spec.Template.Labels[annotations.KueueQueueName]; got != wantQueue {
				t.Errorf("a queued Deployment's pod template has queue label %q, want %q", got, wantQueue)
			}
		}
	}
	var applied mutate.Applied
	if err := json.Unmarshal([]byte(after.GetAnnotations()[annotations.Applied]), &applied); err != nil || len(applied.Features) == 0 {
		t.Errorf("annotation %s=%q: want the JSON record of what was applied (%v)", annotations.Applied, after.GetAnnotations()[annotations.Applied], err)
	}
}

func rwQ(ok bool, s string) string {
	if !ok {
		return "unset"
	}
	return s
}

func rwDeref(p *int32) any {
	if p == nil {
		return "unset"
	}
	return *p
}

// rwMount finds c's mount at path and the pod volume it mounts.
func rwMount(t *corev1.PodTemplateSpec, c corev1.Container, path string) (*corev1.VolumeMount, *corev1.Volume) {
	for i := range c.VolumeMounts {
		m := &c.VolumeMounts[i]
		if m.MountPath != path {
			continue
		}
		for j := range t.Spec.Volumes {
			if t.Spec.Volumes[j].Name == m.Name {
				return m, &t.Spec.Volumes[j]
			}
		}
		return m, nil
	}
	return nil, nil
}

// rwCheckSecondPass: the mutated object is a fixed point, silently.
func rwCheckSecondPass(t *testing.T, out []byte) {
	t.Helper()
	res, err := kinds.Admit(out, rwPolicy, rwUser)
	if err != nil {
		t.Fatalf("second Admit: %v", err)
	}
	if !res.Managed {
		t.Error("second Admit: not managed")
	}
	if len(res.Patch) > 0 {
		t.Errorf("second Admit: want an empty patch, got %s", rwJSON(res.Patch))
	}
	if len(res.Warnings) > 0 {
		t.Errorf("second Admit: want no warnings, got %q", res.Warnings)
	}
}
