package mutate_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	"gomodules.xyz/jsonpatch/v2"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
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

// rwOwned are the paths the webhook may replace: the fields it owns. Anything else it may only add to.
var rwOwned = []*regexp.Regexp{
	regexp.MustCompile(`^/metadata/labels/(kueue\.x-k8s\.io|kaiwo\.silogen\.ai)~1[^/]+$`),
	regexp.MustCompile(`^/metadata/annotations/kaiwo\.silogen\.ai~1applied$`),
	regexp.MustCompile(`^/spec/(suspend|shutdownAfterJobFinishes|ttlSecondsAfterFinished)$`),
	regexp.MustCompile(`^/spec/rayCluster(Spec|Config)/(suspend|enableInTreeAutoscaling)$`),
	regexp.MustCompile(`^/spec/rayCluster(Spec|Config)/workerGroupSpecs/\d+/(replicas|minReplicas|maxReplicas)$`),
	regexp.MustCompile(`^/spec/template/metadata/labels/kueue\.x-k8s\.io~1[^/]+$`),
}

// rwCheckPatch: no removals, replacements only of owned fields, and every other leaf of the input
// (a scalar, or an empty object or array) is still in the output at the same JSON pointer with the same value.
func rwCheckPatch(t *testing.T, in, out []byte, ops []jsonpatch.Operation) {
	t.Helper()
	var replaced []string
	for _, op := range ops {
		switch op.Operation {
		case "remove":
			t.Errorf("patch removes %s: the webhook must only add or replace what it owns", op.Path)
		case "replace", "move", "copy":
			replaced = append(replaced, op.Path)
			owned := false
			for _, re := range rwOwned {
				owned = owned || re.MatchString(op.Path)
			}
			if !owned {
				t.Errorf("patch %ss %s, a field the webhook does not own (value %s)", op.Operation, op.Path, rwJSON(op.Value))
			}
		}
	}
	inDoc, outDoc := rwDecode(t, in), rwDecode(t, out)
	leaves := map[string]any{}
	rwLeaves("", inDoc, leaves)
	for _, p := range rwSortedKeys(leaves) {
		if rwCovered(p, replaced) {
			continue
		}
		want := leaves[p]
		got, ok := rwGet(outDoc, p)
		switch {
		case !ok:
			t.Errorf("input field %s is gone from the output", p)
		case rwEmptyContainer(want):
			if reflect.TypeOf(got) != reflect.TypeOf(want) {
				t.Errorf("input field %s was %s, is %s in the output", p, rwJSON(want), rwJSON(got))
			}
		case !reflect.DeepEqual(want, got):
			t.Errorf("input field %s changed from %s to %s without a replace op", p, rwJSON(want), rwJSON(got))
		}
	}
}

func rwDecode(t testing.TB, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func rwEmptyContainer(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		return len(v) == 0
	case []any:
		return len(v) == 0
	}
	return false
}

var rwEscape = strings.NewReplacer("~", "~0", "/", "~1")

func rwLeaves(prefix string, v any, out map[string]any) {
	switch v := v.(type) {
	case map[string]any:
		if len(v) == 0 {
			out[prefix] = v
		}
		for k, e := range v {
			rwLeaves(prefix+"/"+rwEscape.Replace(k), e, out)
		}
	case []any:
		if len(v) == 0 {
			out[prefix] = v
		}
		for i, e := range v {
			rwLeaves(prefix+"/"+strconv.Itoa(i), e, out)
		}
	default:
		out[prefix] = v
	}
}

func rwGet(doc any, pointer string) (any, bool) {
	if pointer == "" {
		return doc, true
	}
	cur := doc
	for _, tok := range strings.Split(pointer[1:], "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

func rwCovered(p string, replaced []string) bool {
	for _, r := range replaced {
		if p == r || strings.HasPrefix(p, r+"/") {
			return true
		}
	}
	return false
}

func rwSortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

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

// TestRealWorldOperatorsAccept checks that the webhook never turns a RayJob or RayService that KubeRay
// and Kueue accept into one they reject: the admission call either denies, with a reason, or hands on
// an object that will run. The rules are KubeRay's and Kueue's own, restated (importing KubeRay's
// controllers/ray/utils would change go.mod).
func TestRealWorldOperatorsAccept(t *testing.T) {
	for _, name := range rwSortedCases() {
		tc := rwCases[name]
		if len(tc.denied) > 0 {
			continue
		}
		t.Run(name, func(t *testing.T) {
			raw := rwLoad(t, rwFile(name), tc.annotations)
			res, err := kinds.Admit(raw, rwPolicy, rwUser)
			if err != nil {
				return // a denial is always an acceptable answer here; TestRealWorld says which are expected
			}
			out, err := typedpatch.Apply(raw, res.Patch)
			if err != nil {
				t.Fatal(err)
			}
			was := map[string]bool{}
			for _, e := range rwOperatorErrors(rwDecodeObject(t, raw)) {
				was[e] = true
			}
			for _, e := range rwOperatorErrors(rwDecodeObject(t, out)) {
				if !was[e] {
					t.Errorf("the mutated object is rejected: %s", e)
				}
			}
		})
	}
}

// rwOperatorErrors restates the checks of KubeRay v1.6.0 (ray-operator/controllers/ray/utils/validation.go:
// ValidateRayJobSpec, validateDeletionConfiguration, ValidateRayClusterSpec) and, for queued objects,
// Kueue v0.17.0 (pkg/controller/jobs/rayjob/rayjob_webhook.go validateCreate, raycluster/common.go ValidateCreate)
// that depend on fields the webhook writes.
func rwOperatorErrors(obj client.Object) []string {
	var errs []string
	queued := obj.GetLabels()[annotations.KueueQueueName] != ""
	cluster := func(c *rayv1.RayClusterSpec) {
		if c == nil {
			return
		}
		autoscaling := ptr.Deref(c.EnableInTreeAutoscaling, false)
		for _, g := range c.WorkerGroupSpecs {
			if !autoscaling && (g.MinReplicas == nil || g.MaxReplicas == nil) {
				errs = append(errs, fmt.Sprintf("KubeRay: worker group %s must set both minReplicas and maxReplicas when autoscaling is disabled", g.GroupName))
			}
			if g.MinReplicas != nil && g.MaxReplicas != nil && *g.MinReplicas > *g.MaxReplicas {
				errs = append(errs, fmt.Sprintf("KubeRay: worker group %s has minReplicas greater than maxReplicas", g.GroupName))
			}
			if queued && g.GroupName == "head" {
				errs = append(errs, "Kueue: worker group name \"head\" is reserved for the head group")
			}
		}
		if queued && autoscaling {
			errs = append(errs, "Kueue: a kueue managed job should only use autoscaling when workload slicing is enabled")
		}
		if queued && len(c.WorkerGroupSpecs) > 7 {
			errs = append(errs, "Kueue: at most 7 worker groups")
		}
	}
	switch o := obj.(type) {
	case *rayv1.RayJob:
		s := &o.Spec
		if s.Suspend && !s.ShutdownAfterJobFinishes {
			errs = append(errs, "KubeRay: a RayJob with shutdownAfterJobFinishes set to false is not allowed to be suspended")
		}
		if s.TTLSecondsAfterFinished < 0 {
			errs = append(errs, "KubeRay: TTLSecondsAfterFinished must be a non-negative integer")
		}
		if !s.ShutdownAfterJobFinishes && s.TTLSecondsAfterFinished > 0 {
			errs = append(errs, "KubeRay: a RayJob with shutdownAfterJobFinishes set to false cannot have TTLSecondsAfterFinished")
		}
		if s.DeletionStrategy != nil && len(s.DeletionStrategy.DeletionRules) > 0 && s.ShutdownAfterJobFinishes {
			errs = append(errs, "KubeRay: spec.shutdownAfterJobFinishes and spec.deletionStrategy.deletionRules are mutually exclusive")
		}
		if s.Suspend && len(s.ClusterSelector) > 0 {
			errs = append(errs, "KubeRay: the ClusterSelector mode doesn't support the suspend operation")
		}
		if queued && !s.ShutdownAfterJobFinishes {
			errs = append(errs, "Kueue: a kueue managed job should delete the cluster after finishing")
		}
		cluster(s.RayClusterSpec)
	case *rayv1.RayService:
		cluster(&o.Spec.RayClusterSpec)
		if o.Spec.UpgradeStrategy != nil && ptr.Deref(o.Spec.UpgradeStrategy.Type, "") == rayv1.RayServiceNewClusterWithIncrementalUpgrade &&
			!ptr.Deref(o.Spec.RayClusterSpec.EnableInTreeAutoscaling, false) {
			errs = append(errs, "KubeRay: Ray Autoscaler is required for NewClusterWithIncrementalUpgrade")
		}
	}
	return errs
}
