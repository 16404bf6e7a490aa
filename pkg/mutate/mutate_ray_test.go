package mutate_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	. "github.com/silogen/kaiwo-webhook/internal/testobj"
	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

func TestRayPlanning(t *testing.T) {
	cases := map[string]struct {
		annots               map[string]string
		perNode              int32
		workers, perWorker   int32
		warnContains         string
		gpuGroup, otherGroup int
	}{
		"fits one node":            {annots: map[string]string{annotations.GPUs: "4"}, workers: 1, perWorker: 4},
		"two full nodes":           {annots: map[string]string{annotations.GPUs: "16"}, workers: 2, perWorker: 8, warnContains: "16 GPUs planned as 2 workers x 8 amd.com/gpu (8 GPUs per node)"},
		"largest divisor":          {annots: map[string]string{annotations.GPUs: "12"}, workers: 2, perWorker: 6},
		"prime total":              {annots: map[string]string{annotations.GPUs: "17"}, workers: 17, perWorker: 1, warnContains: "each worker uses 1 of 8 GPUs"},
		"18 on 8-GPU nodes":        {annots: map[string]string{annotations.GPUs: "18"}, workers: 3, perWorker: 6},
		"4-GPU nodes":              {annots: map[string]string{annotations.GPUs: "16"}, perNode: 4, workers: 4, perWorker: 4},
		"replicas x per replica":   {annots: map[string]string{annotations.Replicas: "4", annotations.GPUsPerReplica: "2"}, workers: 4, perWorker: 2},
		"all three agree":          {annots: map[string]string{annotations.GPUs: "8", annotations.Replicas: "4", annotations.GPUsPerReplica: "2"}, workers: 4, perWorker: 2},
		"replicas divides":         {annots: map[string]string{annotations.GPUs: "8", annotations.Replicas: "2"}, workers: 2, perWorker: 4},
		"gpus per replica divides": {annots: map[string]string{annotations.GPUs: "16", annotations.GPUsPerReplica: "4"}, workers: 4, perWorker: 4},
		"pipeline x tensor parallelism": {annots: map[string]string{annotations.GPUs: "16", annotations.Env: "envVars:\n- {name: PIPELINE_PARALLELISM, value: \"4\"}\n- {name: TENSOR_PARALLELISM, value: \"4\"}\n"},
			workers: 4, perWorker: 4, warnContains: "PIPELINE_PARALLELISM x TENSOR_PARALLELISM"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b := MakeRayJob("r", "ml", "gpu", "cpu").Submitter()
			for k, v := range tc.annots {
				b.Annotate(k, v)
			}
			p := policy.Default()
			if tc.perNode > 0 {
				p.Defaults.GPUsPerNode = tc.perNode
			}
			o, w := run(t, b.Obj(), p)
			rj := o.(*rayv1.RayJob)
			g := rj.Spec.RayClusterSpec.WorkerGroupSpecs[0] // with no group asking for GPUs, the first
			if got := ptr.Deref(g.Replicas, 0); got != tc.workers || ptr.Deref(g.MinReplicas, 0) != tc.workers || ptr.Deref(g.MaxReplicas, 0) != tc.workers {
				t.Errorf("replicas/min/max = %v/%v/%v, want %d", got, ptr.Deref(g.MinReplicas, 0), ptr.Deref(g.MaxReplicas, 0), tc.workers)
			}
			wantGPUs(t, g.Template.Spec.Containers[0], amd, int64(tc.perWorker), "", "")
			noGPUs(t, rj.Spec.RayClusterSpec.HeadGroupSpec.Template.Spec.Containers[0])
			noGPUs(t, rj.Spec.RayClusterSpec.WorkerGroupSpecs[1].Template.Spec.Containers[0])
			for _, tpl := range []corev1.PodTemplateSpec{rj.Spec.RayClusterSpec.HeadGroupSpec.Template, g.Template, *rj.Spec.SubmitterPodTemplate} {
				env := envOf(tpl.Spec.Containers[0])
				if env["NUM_REPLICAS"] != itoa(tc.workers) || env["NUM_GPUS_PER_REPLICA"] != itoa(tc.perWorker) || env["NUM_GPUS"] != itoa(tc.workers*tc.perWorker) {
					t.Errorf("container %s env %v", tpl.Spec.Containers[0].Name, env)
				}
			}
			if !rj.Spec.Suspend || !rj.Spec.ShutdownAfterJobFinishes || ptr.Deref(rj.Spec.RayClusterSpec.EnableInTreeAutoscaling, true) {
				t.Errorf("suspend=%v shutdown=%v autoscaling=%v", rj.Spec.Suspend, rj.Spec.ShutdownAfterJobFinishes, rj.Spec.RayClusterSpec.EnableInTreeAutoscaling)
			}
			if tc.warnContains != "" && !strings.Contains(strings.Join(w, "\n"), tc.warnContains) {
				t.Errorf("warnings %q lack %q", w, tc.warnContains)
			}
			again, w2 := run(t, rj, p)
			if diff := cmp.Diff(rj, again); diff != "" || len(w2) > 0 {
				t.Errorf("second pass changed (-first,+second):\n%s\nwarnings %q", diff, w2)
			}
		})
	}
}

func TestRayGPUGroupFromTemplate(t *testing.T) {
	cases := map[string]struct {
		perWorker, gpus string
		workers         int32
	}{
		"template asks 8 per worker, 16 in all": {perWorker: "8", gpus: "16", workers: 2},
		"template asks 1 per worker, 4 in all":  {perWorker: "1", gpus: "4", workers: 4},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			obj := MakeRayJob("r", "ml", "cpu", "gpu").WorkerResource(1, amd, tc.perWorker).Annotate(annotations.GPUs, tc.gpus).Obj()
			o, _ := run(t, obj, nil)
			rc := o.(*rayv1.RayJob).Spec.RayClusterSpec
			if got := ptr.Deref(rc.WorkerGroupSpecs[1].Replicas, 0); got != tc.workers {
				t.Errorf("GPU group workers = %d, want %d", got, tc.workers)
			}
			if got := ptr.Deref(rc.WorkerGroupSpecs[0].Replicas, 0); got != 1 {
				t.Errorf("CPU group workers = %d, want unchanged 1", got)
			}
		})
	}
}

func TestRayService(t *testing.T) {
	o, _ := run(t, MakeRayService("llm", "ml", "gpu").Annotate(annotations.GPUs, "16").Annotate(annotations.WorkloadConfigMap, "app").Obj(), nil)
	rs := o.(*rayv1.RayService)
	if rs.Spec.RayClusterSpec.Suspend != nil || rs.Labels[annotations.KueueQueueName] != "" {
		t.Errorf("RayService queued by default: suspend=%v labels=%v", rs.Spec.RayClusterSpec.Suspend, rs.Labels)
	}
	g := rs.Spec.RayClusterSpec.WorkerGroupSpecs[0]
	if ptr.Deref(g.Replicas, 0) != 2 {
		t.Errorf("workers = %d, want 2", ptr.Deref(g.Replicas, 0))
	}
	if !hasMount(g.Template.Spec.Containers[0], "/workload/app") {
		t.Error("code not at /workload/app")
	}
	q, _ := run(t, MakeRayService("llm", "ml", "gpu").Annotate(annotations.Queueing, "kueue").Obj(), nil)
	if rs := q.(*rayv1.RayService); !ptr.Deref(rs.Spec.RayClusterSpec.Suspend, false) || rs.Labels[annotations.KueueQueueName] != "kaiwo" {
		t.Errorf("queueing kueue: suspend=%v labels=%v", rs.Spec.RayClusterSpec.Suspend, rs.Labels)
	}
}
