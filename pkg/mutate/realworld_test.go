package mutate_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
	"github.com/silogen/kaiwo-webhook/pkg/typedpatch"
)

// Real-world inputs: KubeRay's and Kueue's own sample manifests (testdata/realworld, each with its
// source and license in a header comment), with Kaiwo annotations added here. The test asserts
// invariants of the result, not golden output, so it keeps holding as the mutation grows features.

const rwDir = "testdata/realworld"

// rwEnv is the Kaiwo env file every case carries: a value, a Secret value and a mounted Secret key.
const rwEnv = `envVars:
  - name: MODEL_ID
    value: meta-llama/Llama-3.1-8B
  - fromSecret: {name: HF_TOKEN, secret: hf-token, key: hf-token}
  - mountSecret: {name: GOOGLE_APPLICATION_CREDENTIALS, secret: gcs-credentials, key: gcs-credentials-json, path: /etc/gcp/credentials.json}
`

const rwUser = "alice@example.com"

var (
	rwRay    = map[string]string{annotations.GPUs: "16", annotations.Env: rwEnv, annotations.WorkloadConfigMap: "train-code"}
	rwJob    = map[string]string{annotations.GPUs: "4", annotations.Env: rwEnv, annotations.WorkloadConfigMap: "train-code"}
	rwDeploy = map[string]string{annotations.GPUs: "2", annotations.Env: rwEnv, annotations.WorkloadConfigMap: "serve-code"}
)

// rwWith is base plus kv pairs; an empty value removes the key.
func rwWith(base map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(out, kv[i])
		} else {
			out[kv[i]] = kv[i+1]
		}
	}
	return out
}

type rwCase struct {
	// annotations are added to the sample's metadata.annotations.
	annotations map[string]string
	// denied, when set, are texts the denial must contain (the field and the value).
	denied []string
}

// rwCases are keyed "<file name without .yaml>[/<variant>]".
var rwCases = map[string]rwCase{
	// RayJobs.
	"kuberay-ray-job.sample":                 {annotations: rwRay},
	"kuberay-ray-job.sample/queueing-none":   {annotations: rwWith(rwRay, annotations.Queueing, "none")},
	"kuberay-ray-job.sidecar-mode":           {annotations: rwWith(rwRay, annotations.ShmSize, "64Gi")},
	"kuberay-ray-job.light-weight-submitter": {annotations: rwRay},
	"kuberay-ray-job.kueue-toy-sample":       {annotations: rwWith(rwRay, annotations.Queue, "team-ml")},
	"kuberay-ray-job.resources":              {annotations: rwWith(rwRay, annotations.Replicas, "4")},
	// Kueue needs shutdownAfterJobFinishes: true, which KubeRay forbids with deletionRules.
	"kuberay-ray-job.deletion-rules":          {annotations: rwRay, denied: []string{"spec.deletionStrategy.deletionRules", "kaiwo.silogen.ai/queueing: none"}},
	"kuberay-ray-job.deletion-rules/no-queue": {annotations: rwWith(rwRay, annotations.Queueing, "none")},
	// A worker of numOfHosts 4 is 4 pods: 16 GPUs as 2 workers x 8 would be 64.
	"kuberay-ray-job.tpu-v6e-16-multihost":               {annotations: rwRay, denied: []string{"spec.rayClusterSpec.workerGroupSpecs[0].numOfHosts: Invalid value: 4"}},
	"kuberay-ray-job.label-selector-multigroup/queued":   {annotations: rwRay, denied: []string{"spec.rayClusterSpec.enableInTreeAutoscaling", "kaiwo.silogen.ai/queueing: none"}},
	"kuberay-ray-job.label-selector-multigroup/no-queue": {annotations: rwWith(rwRay, annotations.Queueing, "none", annotations.GPUVendor, "nvidia")},
	// The sample brings its own memory-backed dshm at /dev/shm, which is what Kaiwo would add.
	"kuberay-ray-data-image-resize-gcsfusecsi-job": {annotations: rwRay},
	// Asking for a size conflicts with that dshm. The denial must name the annotation that conflicts, as
	// renaming the volume (what a denial naming only the volume suggests) leads to a mount conflict at /dev/shm.
	"kuberay-ray-data-image-resize-gcsfusecsi-job/shm-size": {annotations: rwWith(rwRay, annotations.ShmSize, "64Gi"), denied: []string{`"dshm"`, "kaiwo.silogen.ai/shm-size"}},
	// The head already asks for 4 nvidia.com/gpu and there is no worker group to plan 16 over.
	"kuberay-ray-job.batch-inference": {annotations: rwWith(rwRay, annotations.GPUVendor, "nvidia"), denied: []string{"workerGroupSpecs"}},

	// RayServices.
	"kuberay-ray-service.sample": {annotations: rwRay},
	// GPUs already set: 2 workers x 8 nvidia.com/gpu is what planning 16 on 8-GPU nodes gives.
	"kuberay-ray-service.deepseek": {annotations: rwWith(rwRay, annotations.GPUVendor, "nvidia")},
	// GPUs already set: 4 per worker, so 16 are 4 workers of 4.
	"kuberay-ray-service.llm-serve":             {annotations: rwWith(rwRay, annotations.GPUVendor, "nvidia")},
	"kuberay-ray-service.llm-serve/per-replica": {annotations: rwWith(rwRay, annotations.GPUVendor, "nvidia", annotations.GPUsPerReplica, "4")},
	// The annotations say 8 per worker, the worker says 4: a conflict, never an overwrite.
	"kuberay-ray-service.llm-serve/conflict":  {annotations: rwWith(rwRay, annotations.GPUVendor, "nvidia", annotations.GPUsPerReplica, "8"), denied: []string{"resources.limits[nvidia.com/gpu]", "conflicts"}},
	"kuberay-ray-service.stable-diffusion":    {annotations: rwWith(rwRay, annotations.GPUVendor, "nvidia", annotations.GPUsPerReplica, "1")},
	"kuberay-ray-service.high-availability":   {annotations: rwRay},
	"kuberay-ray-service.incremental-upgrade": {annotations: rwRay},
	// A RayService names its cluster spec.rayClusterConfig; a denial must name the field the user wrote.
	"kuberay-ray-service.incremental-upgrade/queued": {annotations: rwWith(rwRay, annotations.Queueing, "kueue"), denied: []string{"spec.rayClusterConfig.enableInTreeAutoscaling"}},

	// Jobs.
	"kueue-kueueviz-llm-job":                {annotations: rwJob},
	"kueue-kueueviz-agi-job":                {annotations: rwWith(rwJob, annotations.Queue, "agi-model-queue", annotations.TTLSecondsAfter, "600", annotations.Container, "agi-training-brain")},
	"kueue-kueueviz-agi-job/queue-conflict": {annotations: rwWith(rwJob, annotations.Queue, "other-queue"), denied: []string{"metadata.labels[kueue.x-k8s.io/queue-name]", "agi-model-queue", "other-queue"}},
	// The GPU comes from a DRA claim, so only env and code are asked for.
	"kueue-kep-2941-dra-job":              {annotations: rwWith(rwJob, annotations.GPUs, "")},
	"kueue-kep-2724-tas-job":              {annotations: rwWith(rwJob, annotations.ShmSize, "8Gi")},
	"kueue-kep-6757-failure-recovery-job": {annotations: rwWith(rwJob, annotations.GPUVendor, "nvidia")},
	"kueue-kep-973-priority-job":          {annotations: rwJob},

	// Deployments.
	"kueue-kueueviz-backend-deployment": {annotations: rwDeploy},
	"kueue-manager-deployment":          {annotations: rwWith(rwDeploy, annotations.Queueing, "kueue", annotations.Queue, "serving")},
}

func rwPolicy(string) *policy.Policy { return policy.Default() }

// rwLoad reads a sample, converts it to JSON and adds the annotations.
func rwLoad(t testing.TB, file string, add map[string]string) []byte {
	t.Helper()
	return rwAnnotate(t, rwReadJSON(t, filepath.Join(rwDir, file)), add)
}

// rwReadJSON reads a one-document YAML file as JSON.
func rwReadJSON(t testing.TB, path string) []byte {
	t.Helper()
	y, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return raw
}

func rwAnnotate(t testing.TB, raw []byte, add map[string]string) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	meta, _ := doc["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		doc["metadata"] = meta
	}
	annots, _ := meta["annotations"].(map[string]any)
	if annots == nil {
		annots = map[string]any{}
	}
	for k, v := range add {
		annots[k] = v
	}
	if len(annots) > 0 {
		meta["annotations"] = annots
	}
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func rwFile(name string) string { return strings.SplitN(name, "/", 2)[0] + ".yaml" }

// TestRealWorldFiles keeps testdata/realworld and the case table in step.
func TestRealWorldFiles(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(rwDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no real-world samples in %s", rwDir)
	}
	used := map[string]bool{}
	for name := range rwCases {
		used[rwFile(name)] = true
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte("# Source: ")) || !bytes.Contains(b, []byte("Apache License, Version 2.0")) {
			t.Errorf("%s: the header must name the source file and its Apache-2.0 license", f)
		}
		if !used[filepath.Base(f)] {
			t.Errorf("%s: no case in rwCases uses it", f)
		}
		delete(used, filepath.Base(f))
	}
	for f := range used {
		t.Errorf("rwCases names %s, which is not in %s", f, rwDir)
	}
}

// TestRealWorld runs Admit and ApplyPatch on every sample and checks what must hold for any input:
// the GPUs asked for are placed (and only there), requests equal limits, nothing of the input is lost,
// queueing is complete, every container gets the NUM_* env, and a second pass changes nothing.
func TestRealWorld(t *testing.T) {
	for _, name := range rwSortedCases() {
		tc := rwCases[name]
		t.Run(name, func(t *testing.T) {
			raw := rwLoad(t, rwFile(name), tc.annotations)
			res, err := kinds.Admit(raw, rwPolicy, rwUser)
			if len(tc.denied) > 0 {
				var d *mutate.Denial
				if !errors.As(err, &d) {
					t.Fatalf("want a denial containing %q, got result %+v, error %v", tc.denied, res, err)
				}
				for _, s := range tc.denied {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("denial does not name %q:\n%v", s, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Admit: %v", err)
			}
			if !res.Managed {
				t.Fatal("an annotated object is not managed")
			}
			out, err := typedpatch.Apply(raw, res.Patch)
			if err != nil {
				t.Fatalf("ApplyPatch: %v\npatch: %s", err, rwJSON(res.Patch))
			}
			rwCheckPatch(t, raw, out, res.Patch)
			rwCheckObject(t, tc, raw, out)
			rwCheckSecondPass(t, out)
		})
	}
}

func rwSortedCases() []string {
	names := make([]string, 0, len(rwCases))
	for n := range rwCases {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func rwJSON(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}
