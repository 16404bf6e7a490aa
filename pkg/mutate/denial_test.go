package mutate_test

import (
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	. "github.com/silogen/kaiwo-webhook/internal/testobj"
	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

func job(kv ...string) *JobWrapper {
	j := MakeJob("j", "ml")
	for i := 0; i+1 < len(kv); i += 2 {
		j.Annotate(kv[i], kv[i+1])
	}
	return j
}

// TestDenials: bad input is denied with a message naming the field, the value and what is allowed,
// and nothing is half-applied: the input is untouched and no object comes back.
func TestDenials(t *testing.T) {
	envKey := annotations.Env
	cases := map[string]struct {
		obj  client.Object
		raw  func(client.Object) []byte
		pol  *policy.Policy
		want []string
	}{
		"non-numeric gpus": {obj: job(annotations.GPUs, "four").Obj(),
			want: []string{"metadata.annotations[kaiwo.silogen.ai/gpus]", `"four"`, "must be a whole number >= 0"}},
		"negative gpus": {obj: job(annotations.GPUs, "-1").Obj(),
			want: []string{"kaiwo.silogen.ai/gpus", `"-1"`, "must be an integer from 0 to 2147483647"}},
		"fractional gpus": {obj: job(annotations.GPUs, "1.5").Obj(),
			want: []string{"kaiwo.silogen.ai/gpus", `"1.5"`, "whole number"}},
		"overflowing gpus": {obj: job(annotations.GPUs, "99999999999999999999").Obj(),
			want: []string{"kaiwo.silogen.ai/gpus", "99999999999999999999", "from 0 to 2147483647"}},
		"zero replicas": {obj: job(annotations.Replicas, "0").Obj(),
			want: []string{"kaiwo.silogen.ai/replicas", `"0"`, "from 1 to"}},
		"unknown vendor": {obj: job(annotations.GPUVendor, "intel").Obj(),
			want: []string{"kaiwo.silogen.ai/gpu-vendor", `"intel"`, `"amd", "nvidia"`}},
		"typo in a key is denied with a suggestion": {obj: job("kaiwo.silogen.ai/gpu", "4").Obj(),
			want: []string{"metadata.annotations[kaiwo.silogen.ai/gpu]", `did you mean "kaiwo.silogen.ai/gpus"`, "supported:"}},
		"unknown queueing": {obj: job(annotations.Queueing, "slurm").Obj(),
			want: []string{"kaiwo.silogen.ai/queueing", `"slurm"`, `"kueue", "none"`}},
		"queue with queueing none": {obj: job(annotations.Queueing, "none", annotations.Queue, "q").Obj(),
			want: []string{"kaiwo.silogen.ai/queue", `"q"`, "conflicts with kaiwo.silogen.ai/queueing: none"}},
		"invalid queue name": {obj: job(annotations.Queue, "Team ML").Obj(),
			want: []string{"kaiwo.silogen.ai/queue", `"Team ML"`, "must be a LocalQueue name"}},
		"negative shm size": {obj: job(annotations.ShmSize, "-1Gi").Obj(),
			want: []string{"kaiwo.silogen.ai/shm-size", `"-1Gi"`, "positive quantity"}},
		"negative ttl": {obj: job(annotations.TTLSecondsAfter, "-5").Obj(),
			want: []string{"kaiwo.silogen.ai/ttl-seconds-after-finished", `"-5"`, "from 0 to"}},
		"malformed env yaml": {obj: job(envKey, "envVars: [name: A").Obj(),
			want: []string{"metadata.annotations[kaiwo.silogen.ai/env]", "must be the Kaiwo env-file YAML"}},
		"unknown env field": {obj: job(envKey, "envVars:\n- {name: A, valu: b}\n").Obj(),
			want: []string{"kaiwo.silogen.ai/env", `unknown field "valu"`}},
		"duplicate env names": {obj: job(envKey, "envVars:\n- {name: A, value: x}\n- fromSecret: {name: A, secret: s, key: k}\n").Obj(),
			want: []string{"kaiwo.silogen.ai/env].envVars[1].fromSecret.name", "Duplicate value", `"A"`}},
		"reserved env name": {obj: job(envKey, "envVars:\n- {name: NUM_GPUS, value: \"3\"}\n").Obj(),
			want: []string{"envVars[0].name", `"NUM_GPUS"`, "is set by Kaiwo"}},
		"env name already set differently": {obj: job(envKey, "envVars:\n- {name: MODE, value: train}\n").Env(0, "MODE", "eval").Obj(),
			want: []string{"spec.template.spec.containers[0].env[0]", `MODE=eval`, `(MODE=train)`}},
		"relative mountSecret path": {obj: job(envKey, "envVars:\n- mountSecret: {name: C, secret: s, key: k, path: etc/creds}\n").Obj(),
			want: []string{"mountSecret.path", `"etc/creds"`, "absolute path"}},
		"mount path collides": {obj: job(envKey, "envVars:\n- mountSecret: {name: C, secret: s, key: k, path: /data}\n").Mount(0, "data", "/data").Obj(),
			want: []string{"spec.template.spec.containers[0].volumeMounts[0].mountPath", `"/data"`, `already mounts volume "data"`}},
		"code mount collides": {obj: job(annotations.WorkloadConfigMap, "code").Mount(0, "mine", "/workload").Obj(),
			want: []string{"volumeMounts[0].mountPath", `"/workload"`, `Kaiwo mounts volume "kaiwo-workload"`}},
		"volume name collides": {obj: job(annotations.WorkloadConfigMap, "code").Mount(0, "kaiwo-workload", "/mnt").Obj(),
			want: []string{"spec.template.spec.volumes[0].name", `"kaiwo-workload"`, "rename your volume"}},
		"invalid configmap name": {obj: job(annotations.WorkloadConfigMap, "My_Code").Obj(),
			want: []string{"kaiwo.silogen.ai/workload-configmap", `"My_Code"`, "must be a ConfigMap name"}},
		"configmap in another namespace": {obj: job(annotations.WorkloadConfigMap, "other/code").Obj(),
			want: []string{"kaiwo.silogen.ai/workload-configmap", `"other/code"`, "namespace/name"}},
		"secret in another namespace": {obj: job(envKey, "envVars:\n- fromSecret: {name: T, secret: other/tok, key: k}\n").Obj(),
			want: []string{"fromSecret.secret", `"other/tok"`, "namespace/name"}},
		"invalid pull secret": {obj: job(annotations.ImagePullSecret, "Reg Cred").Obj(),
			want: []string{"kaiwo.silogen.ai/image-pull-secret", `"Reg Cred"`, "must be a Secret name"}},
		"oversized annotation": {obj: job(envKey, "envVars:\n- {name: A, value: \""+strings.Repeat("x", 256*1024)+"\"}\n").Obj(),
			want: []string{"metadata.annotations[kaiwo.silogen.ai/env]", "may not be more than 65536 bytes"}},
		"existing different GPU request": {obj: job(annotations.GPUs, "4").Resource(0, "amd.com/gpu", "2").Obj(),
			want: []string{"spec.template.spec.containers[0].resources.limits[amd.com/gpu]", `"2"`, "conflicts with the 4 amd.com/gpu"}},
		"existing other vendor": {obj: job(annotations.GPUs, "4").Resource(0, "nvidia.com/gpu", "4").Obj(),
			want: []string{"limits[nvidia.com/gpu]", `"4"`, "conflicts with the 4 amd.com/gpu"}},
		"missing container": {obj: job(annotations.GPUs, "1", annotations.Container, "trainer").Obj(),
			want: []string{"kaiwo.silogen.ai/container", "trainer", "app containers of spec.template: main"}},
		"ttl conflicts with spec": {obj: job(annotations.TTLSecondsAfter, "60").TTL(30).Obj(),
			want: []string{"spec.ttlSecondsAfterFinished", "30", "TTL of 60"}},
		"queue label conflicts with annotation": {obj: job(annotations.Queue, "a").Label(annotations.KueueQueueName, "b").Obj(),
			want: []string{"metadata.labels[kueue.x-k8s.io/queue-name]", `"b"`, `kaiwo.silogen.ai/queue "a"`}},
		"rayjob without worker groups": {obj: MakeRayJob("r", "ml").Annotate(annotations.GPUs, "8").Obj(),
			want: []string{"spec.rayClusterSpec.workerGroupSpecs", "Required value"}},
		"rayjob without cluster spec": {obj: MakeRayJob("r", "ml", "w").NoCluster().Annotate(annotations.GPUs, "8").Obj(),
			want: []string{"spec.rayClusterSpec", "Required value"}},
		"rayjob with clusterSelector": {obj: MakeRayJob("r", "ml", "w").ClusterSelector("ray.io/cluster", "shared").Annotate(annotations.GPUs, "8").Obj(),
			want: []string{"spec.clusterSelector", "Forbidden", "existing cluster"}},
		"rayjob explicit shutdownAfterJobFinishes false": {obj: MakeRayJob("r", "ml", "w").Annotate(annotations.GPUs, "8").Obj(),
			raw: func(o client.Object) []byte {
				var m map[string]any
				b, _ := json.Marshal(o)
				_ = json.Unmarshal(b, &m)
				m["spec"].(map[string]any)["shutdownAfterJobFinishes"] = false
				b, _ = json.Marshal(m)
				return b
			},
			want: []string{"spec.shutdownAfterJobFinishes", "false", "must be true for a queued RayJob"}},
		"rayjob autoscaling on": {obj: MakeRayJob("r", "ml", "w").Autoscaling(true).Annotate(annotations.GPUs, "8").Obj(),
			want: []string{"spec.rayClusterSpec.enableInTreeAutoscaling", "true", "must be false for a queued Ray cluster"}},
		"replicas x gpus-per-replica disagree with gpus": {obj: MakeRayJob("r", "ml", "w").Annotate(annotations.GPUs, "8").Annotate(annotations.Replicas, "3").Annotate(annotations.GPUsPerReplica, "2").Obj(),
			want: []string{"kaiwo.silogen.ai/gpus", `"8"`, "must equal replicas x gpus-per-replica = 3 x 2 = 6"}},
		"gpus-per-replica does not divide": {obj: MakeRayJob("r", "ml", "w").Annotate(annotations.GPUs, "10").Annotate(annotations.GPUsPerReplica, "4").Obj(),
			want: []string{"kaiwo.silogen.ai/gpus-per-replica", `"4"`, "must divide kaiwo.silogen.ai/gpus (10) evenly"}},
		"parallelism disagrees with gpus": {obj: MakeRayJob("r", "ml", "w").Annotate(annotations.GPUs, "16").Annotate(envKey, "envVars:\n- {name: PIPELINE_PARALLELISM, value: \"3\"}\n- {name: TENSOR_PARALLELISM, value: \"4\"}\n").Obj(),
			want: []string{"kaiwo.silogen.ai/env", "PIPELINE_PARALLELISM=3 x TENSOR_PARALLELISM=4", "must multiply to kaiwo.silogen.ai/gpus (16)"}},
		"gpu-model not a label value": {obj: job(annotations.GPUs, "1", annotations.GPUModel, "mi 300x!").Obj(),
			want: []string{"kaiwo.silogen.ai/gpu-model", `"mi 300x!"`, "must be a node label value"}},
		"priority-class not a name": {obj: job(annotations.GPUs, "1", annotations.PriorityClass, "Bad Class").Obj(),
			want: []string{"kaiwo.silogen.ai/priority-class", `"Bad Class"`, "must be a WorkloadPriorityClass name"}},
		"storage not a size": {obj: job(annotations.GPUs, "1", annotations.Storage, "lots").Obj(),
			want: []string{"kaiwo.silogen.ai/storage]", `"lots"`, "must be a positive whole number of bytes"}},
		"storage-class not a name": {obj: job(annotations.GPUs, "1", annotations.StorageClass, "Bad_Class").Obj(),
			want: []string{"kaiwo.silogen.ai/storage-class", `"Bad_Class"`, "must be a StorageClass name"}},
		"several errors are reported together": {obj: job(annotations.GPUs, "x", annotations.GPUVendor, "intel").Obj(),
			want: []string{"kaiwo.silogen.ai/gpus", "kaiwo.silogen.ai/gpu-vendor"}},
	}
	// Every key a user writes has a bad value here whose denial names it (the whole key: storage is
	// not named by storage-class).
	for _, key := range annotations.UserKeys() {
		whole := regexp.MustCompile(regexp.QuoteMeta(key) + `($|[^-a-z])`)
		named := false
		for _, tc := range cases {
			named = named || slices.ContainsFunc(tc.want, whole.MatchString)
		}
		if !named {
			t.Errorf("no bad-input case is denied naming %s", key)
		}
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			before := tc.obj.DeepCopyObject()
			var raw []byte
			if tc.raw != nil {
				raw = tc.raw(tc.obj)
			}
			out, err := mutateIn(mutate.Input{Object: tc.obj, Raw: raw, Policy: tc.pol})
			var denial *mutate.Denial
			if !errors.As(err, &denial) {
				t.Fatalf("got %v, %v; want a denial", out, err)
			}
			if out != nil {
				t.Errorf("a denial returned an object")
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", shortMsg(msg), w)
				}
			}
			if diff := cmp.Diff(before, tc.obj); diff != "" {
				t.Errorf("input was modified (-before,+after):\n%s", diff)
			}
		})
	}
}

func shortMsg(s string) string {
	if len(s) > 600 {
		return s[:600] + "..."
	}
	return s
}

var _ corev1.ResourceName

func TestBrokenPolicyFailsClosedForManagedObjectsOnly(t *testing.T) {
	p := policy.Default()
	p.Err = errors.New(`KaiwoPolicy "ml" is invalid: spec.defaults.cpuPerGpu: Invalid value: "-1": must be greater than 0`)
	_, err := mutateIn(mutate.Input{Object: job(annotations.GPUs, "1").Obj(), Policy: p})
	if err == nil || !strings.Contains(err.Error(), `KaiwoPolicy "ml" is invalid`) {
		t.Errorf("managed object under a broken policy: %v", err)
	}
	out, err := mutateIn(mutate.Input{Object: MakeJob("plain", "ml").Obj(), Policy: p})
	if err != nil || out.Managed {
		t.Errorf("plain object under a broken policy: managed=%v err=%v", out.Managed, err)
	}
}
