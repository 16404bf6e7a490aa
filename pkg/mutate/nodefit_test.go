package mutate_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	. "github.com/silogen/kaiwo-webhook/internal/testobj"
	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

func parallelEnv(kv ...string) string {
	s := "envVars:\n"
	for i := 0; i+1 < len(kv); i += 2 {
		s += "- {name: " + kv[i] + ", value: \"" + kv[i+1] + "\"}\n"
	}
	return s
}

func perNode(n int32) *policy.Policy {
	p := policy.Default()
	p.Name = "ml"
	p.Defaults.GPUsPerNode = n
	return p
}

// TestPlansANodeCannotHold: every plan whose worker needs more GPUs than a node has is denied, naming
// the annotation or env var that gave the worker its GPUs and the node size, as the Kaiwo CLI refused them.
func TestPlansANodeCannotHold(t *testing.T) {
	rj := func(kv ...string) *RayJobWrapper {
		w := MakeRayJob("r", "ml", "w")
		for i := 0; i+1 < len(kv); i += 2 {
			w.Annotate(kv[i], kv[i+1])
		}
		return w
	}
	node8 := "the 8 GPUs of a node (gpusPerNode of KaiwoPolicy \"ml\")"
	cases := map[string]struct {
		obj  client.Object
		pol  *policy.Policy
		want []string
	}{
		"tensor parallelism larger than a node": {obj: rj(annotations.GPUs, "32", annotations.Env, parallelEnv("TENSOR_PARALLELISM", "16", "PIPELINE_PARALLELISM", "2")).Obj(),
			want: []string{"metadata.annotations[kaiwo.silogen.ai/env]", `"TENSOR_PARALLELISM=16"`, "16 GPUs, more than " + node8}},
		"tensor parallelism alone, larger than a node": {obj: rj(annotations.GPUs, "16", annotations.Env, parallelEnv("TENSOR_PARALLELISM", "16")).Obj(),
			want: []string{"kaiwo.silogen.ai/env", `"TENSOR_PARALLELISM=16"`, node8}},
		"tensor parallelism beside explicit workers": {obj: rj(annotations.Replicas, "2", annotations.GPUsPerReplica, "8", annotations.Env, parallelEnv("TENSOR_PARALLELISM", "16")).Obj(),
			want: []string{"kaiwo.silogen.ai/env", `"TENSOR_PARALLELISM=16"`, node8}},
		"tensor parallelism on 4-GPU nodes": {obj: rj(annotations.GPUs, "16", annotations.Env, parallelEnv("TENSOR_PARALLELISM", "8", "PIPELINE_PARALLELISM", "2")).Obj(), pol: perNode(4),
			want: []string{`"TENSOR_PARALLELISM=8"`, "the 4 GPUs of a node"}},
		"tensor parallelism not a number": {obj: rj(annotations.GPUs, "16", annotations.Env, parallelEnv("TENSOR_PARALLELISM", "eight", "PIPELINE_PARALLELISM", "2")).Obj(),
			want: []string{"kaiwo.silogen.ai/env", `"TENSOR_PARALLELISM=eight"`, "must be a whole number from 1 to 2147483647"}},
		"pipeline parallelism zero": {obj: rj(annotations.GPUs, "16", annotations.Env, parallelEnv("TENSOR_PARALLELISM", "8", "PIPELINE_PARALLELISM", "0")).Obj(),
			want: []string{`"PIPELINE_PARALLELISM=0"`, "must be a whole number from 1"}},
		"tensor parallelism overflowing": {obj: rj(annotations.GPUs, "16", annotations.Env, parallelEnv("TENSOR_PARALLELISM", "99999999999999999999")).Obj(),
			want: []string{`"TENSOR_PARALLELISM=99999999999999999999"`, "must be a whole number"}},
		"ray gpus-per-replica more than a node": {obj: rj(annotations.Replicas, "1", annotations.GPUsPerReplica, "16").Obj(),
			want: []string{"metadata.annotations[kaiwo.silogen.ai/gpus-per-replica]", `"16"`, node8, "use more replicas"}},
		"ray gpus-per-replica alone": {obj: rj(annotations.GPUsPerReplica, "16").Obj(),
			want: []string{"kaiwo.silogen.ai/gpus-per-replica", `"16"`, node8}},
		"ray gpus-per-replica with gpus": {obj: rj(annotations.GPUs, "32", annotations.GPUsPerReplica, "16").Obj(),
			want: []string{"kaiwo.silogen.ai/gpus-per-replica", `"16"`, node8}},
		"ray gpus-per-replica huge": {obj: rj(annotations.Replicas, "2147483647", annotations.GPUsPerReplica, "2147483647").Obj(),
			want: []string{"kaiwo.silogen.ai/gpus-per-replica", `"2147483647"`, node8}},
		"ray replicas too few for the total": {obj: rj(annotations.GPUs, "32", annotations.Replicas, "2").Obj(),
			want: []string{"metadata.annotations[kaiwo.silogen.ai/replicas]", `"2"`, "kaiwo.silogen.ai/gpus (32) over 2 workers gives each worker 16 GPUs", node8}},
		"ray GPUs per worker from the template": {obj: MakeRayJob("r", "ml", "w").WorkerResource(0, amd, "16").Annotate(annotations.GPUs, "32").Obj(),
			want: []string{"spec.rayClusterSpec.workerGroupSpecs[0].template", "16", "GPU request of this worker template", node8}},
		"rayservice gpus-per-replica": {obj: MakeRayService("s", "ml", "w").Annotate(annotations.Replicas, "1").Annotate(annotations.GPUsPerReplica, "16").Obj(),
			want: []string{"kaiwo.silogen.ai/gpus-per-replica", `"16"`, node8}},
		"job gpus more than a node": {obj: job(annotations.GPUs, "16").Obj(),
			want: []string{"metadata.annotations[kaiwo.silogen.ai/gpus]", `"16"`, node8, "use a RayJob or RayService"}},
		"job replicas x gpus-per-replica more than a node": {obj: job(annotations.Replicas, "2", annotations.GPUsPerReplica, "8").Obj(),
			want: []string{"kaiwo.silogen.ai/gpus-per-replica", `"8"`, "replicas x gpus-per-replica = 2 x 8 = 16 for the pod", node8}},
		"job replicas x gpus-per-replica disagree with gpus": {obj: job(annotations.GPUs, "4", annotations.Replicas, "2", annotations.GPUsPerReplica, "4").Obj(),
			want: []string{"metadata.annotations[kaiwo.silogen.ai/gpus]", `"4"`, "must equal replicas x gpus-per-replica = 2 x 4 = 8"}},
		"job gpus-per-replica disagrees with gpus": {obj: job(annotations.GPUs, "2", annotations.GPUsPerReplica, "4").Obj(),
			want: []string{"kaiwo.silogen.ai/gpus", `"2"`, "= 1 x 4 = 4"}},
		"job overflowing product": {obj: job(annotations.Replicas, "2147483647", annotations.GPUsPerReplica, "2147483647").Obj(),
			want: []string{"kaiwo.silogen.ai/gpus-per-replica", "2147483647 x 2147483647 = 4611686014132420609", node8}},
		"deployment gpus-per-replica more than a node": {obj: MakeDeployment("d", "ml").Annotate(annotations.GPUsPerReplica, "9").Obj(),
			want: []string{"kaiwo.silogen.ai/gpus-per-replica", `"9"`, node8}},
		"deployment gpus disagree": {obj: MakeDeployment("d", "ml").Annotate(annotations.GPUs, "1").Annotate(annotations.Replicas, "2").Annotate(annotations.GPUsPerReplica, "1").Obj(),
			want: []string{"kaiwo.silogen.ai/gpus", `"1"`, "2 x 1 = 2"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			pol := tc.pol
			if pol == nil {
				pol = perNode(8)
			}
			before := tc.obj.DeepCopyObject()
			out, err := mutateIn(mutate.Input{Object: tc.obj, Policy: pol})
			var d *mutate.Denial
			if !errors.As(err, &d) || out != nil {
				t.Fatalf("got %v, %v; want a denial", out, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q lacks %q", shortMsg(err.Error()), w)
				}
			}
			if !equalObj(before, tc.obj) {
				t.Errorf("input was modified")
			}
		})
	}
}

func equalObj(a, b any) bool { return cmp.Diff(a, b) == "" }

// TestPlansThatFit: a worker of exactly a node is accepted; below half a node the plan warns, as the CLI did.
func TestPlansThatFit(t *testing.T) {
	cases := map[string]struct {
		obj      client.Object
		workers  int32
		per      int64
		warn     string
		noWarnOf string
	}{
		"tensor parallelism of a whole node": {obj: MakeRayJob("r", "ml", "w").Annotate(annotations.GPUs, "16").Annotate(annotations.Env, parallelEnv("TENSOR_PARALLELISM", "8", "PIPELINE_PARALLELISM", "2")).Obj(),
			workers: 2, per: 8, noWarnOf: "pack nodes"},
		"gpus-per-replica below half a node warns": {obj: MakeRayJob("r", "ml", "w").Annotate(annotations.Replicas, "4").Annotate(annotations.GPUsPerReplica, "2").Obj(),
			workers: 4, per: 2, warn: "each worker uses 2 of 8 GPUs on a node"},
		"tensor parallelism below half a node warns": {obj: MakeRayJob("r", "ml", "w").Annotate(annotations.GPUs, "6").Annotate(annotations.Env, parallelEnv("TENSOR_PARALLELISM", "2", "PIPELINE_PARALLELISM", "3")).Obj(),
			workers: 3, per: 2, warn: "each worker uses 2 of 8 GPUs on a node"},
		"one worker below half a node is fine": {obj: MakeRayJob("r", "ml", "w").Annotate(annotations.GPUs, "2").Obj(),
			workers: 1, per: 2, noWarnOf: "pack nodes"},
		"template worker of a whole node": {obj: MakeRayJob("r", "ml", "w").WorkerResource(0, amd, "8").Annotate(annotations.GPUs, "16").Obj(),
			workers: 2, per: 8},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			o, w := run(t, tc.obj, perNode(8))
			g := o.(*rayv1.RayJob).Spec.RayClusterSpec.WorkerGroupSpecs[0]
			if *g.Replicas != tc.workers {
				t.Errorf("workers = %d, want %d", *g.Replicas, tc.workers)
			}
			wantGPUs(t, g.Template.Spec.Containers[0], amd, tc.per, "", "")
			all := strings.Join(w, "\n")
			if tc.warn != "" && !strings.Contains(all, tc.warn) {
				t.Errorf("warnings %q lack %q", w, tc.warn)
			}
			if tc.noWarnOf != "" && strings.Contains(all, tc.noWarnOf) {
				t.Errorf("warnings %q say %q", w, tc.noWarnOf)
			}
		})
	}
}

// TestPodGPUsFromReplicas: for a Job and a Deployment, replicas x gpus-per-replica are the pod's GPUs,
// as the Kaiwo CLI gave them; each pod is one replica for the NUM_* env vars.
func TestPodGPUsFromReplicas(t *testing.T) {
	cases := map[string]struct {
		obj client.Object
		n   int64
	}{
		"job replicas x gpus-per-replica":        {obj: job(annotations.Replicas, "2", annotations.GPUsPerReplica, "4").Obj(), n: 8},
		"job gpus-per-replica alone":             {obj: job(annotations.GPUsPerReplica, "3").Obj(), n: 3},
		"job all three agree":                    {obj: job(annotations.GPUs, "8", annotations.Replicas, "2", annotations.GPUsPerReplica, "4").Obj(), n: 8},
		"job gpus alone":                         {obj: job(annotations.GPUs, "8").Obj(), n: 8},
		"deployment replicas x gpus-per-replica": {obj: MakeDeployment("d", "ml").Annotate(annotations.Replicas, "2").Annotate(annotations.GPUsPerReplica, "2").Obj(), n: 4},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			o, _ := run(t, tc.obj, perNode(8))
			var c = podContainer(o)
			wantGPUs(t, c, amd, tc.n, "", "")
			env := envOf(c)
			if env["NUM_GPUS"] != itoa(int32(tc.n)) || env["NUM_REPLICAS"] != "1" || env["NUM_GPUS_PER_REPLICA"] != itoa(int32(tc.n)) {
				t.Errorf("env %v, want NUM_GPUS=%d NUM_REPLICAS=1 NUM_GPUS_PER_REPLICA=%d", env, tc.n, tc.n)
			}
			again, w := run(t, o, perNode(8))
			if !equalObj(o, again) || len(w) > 0 {
				t.Errorf("second pass changed the object or warned %q", w)
			}
		})
	}
}

func podContainer(o client.Object) corev1.Container {
	switch x := o.(type) {
	case *batchv1.Job:
		return x.Spec.Template.Spec.Containers[0]
	case *appsv1.Deployment:
		return x.Spec.Template.Spec.Containers[0]
	}
	panic("not a pod kind")
}
