package mutate_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
	"github.com/silogen/kaiwo-webhook/pkg/typedpatch"
	"github.com/silogen/kaiwo-webhook/pkg/typedpatch/patchtest"
)

// fzKeys are the annotations the fuzzer varies, in the order of FuzzMutate's string arguments.
var fzKeys = []string{
	annotations.GPUs, annotations.GPUVendor, annotations.Replicas, annotations.GPUsPerReplica, annotations.Env,
	annotations.ShmSize, annotations.Queue, annotations.Container, annotations.TTLSecondsAfter,
}

// fzCombos are annotation values tried on every seed object, in fzKeys order; "" leaves a key as the object has it.
var fzCombos = [][9]string{
	{},
	{"16", "amd", "", "", rwEnv, "64Gi", "team-ml", "", "600"},
	{"8", "nvidia", "2", "4", "", "", "", "", ""},
	{"0", "", "", "", "envVars: []", "1Gi", "", "", "120"},
	{"6", "", "3", "", "envVars:\n  - {name: PIPELINE_PARALLELISM, value: \"2\"}\n  - {name: TENSOR_PARALLELISM, value: \"3\"}\n", "", "", "ray-worker", ""},
	{"-1", "intel", "0", "x", "envVars: {", "-5Gi", "Team/ML", "No_Such", "-1"},
}

// fzTeamPolicy is an admin policy that exercises every per-template feature: Enforce mode, tolerations,
// nodeSelector, affinity, shm, priority class, pull secret, limits, a lock, and a podTemplatePatch.
// (A patch that also writes tolerations is TestPolicyPatchKeepsLockedTolerations.)
const fzTeamPolicy = `apiVersion: kaiwo.silogen.ai/v1alpha1
kind: KaiwoPolicy
metadata:
  name: team-ml
  generation: 3
spec:
  priority: 10
  namespaceSelector:
    matchLabels: {kaiwo.silogen.ai/team: ml}
  mode: Enforce
  defaults:
    queue: team-ml
    gpuVendor: amd
    gpusPerNode: 8
    cpuPerGpu: "4"
    memoryPerGpu: 32Gi
    shmSize: 16Gi
    ttlSecondsAfterFinished: 1800
    priorityClass: normal
    imagePullSecret: regcred
    tolerations: [{key: amd.com/gpu, operator: Exists, effect: NoSchedule}]
    nodeSelector: {node-pool: gpu}
    affinity:
      nodeAffinity:
        preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 10
            preference:
              matchExpressions: [{key: zone, operator: In, values: [a]}]
  limits:
    maxGpusPerWorkload: 64
    allowedSecrets: ["hf-token", "gcs-*", "regcred"]
  locked: [tolerations]
  podTemplatePatch:
    metadata: {annotations: {team: ml}, labels: {team: ml}}
    spec:
      priorityClassName: gpu-high
`

// fzPolicies are the policies the fuzzer picks from: the built-in default and fzTeamPolicy.
func fzPolicies(f *testing.F) []*policy.Policy {
	return []*policy.Policy{policy.Default(), fzCompile(f, fzTeamPolicy)}
}

// fzCompile loads, compiles and resolves a KaiwoPolicy team-ml for a namespace labelled kaiwo.silogen.ai/team: ml.
func fzCompile(t testing.TB, doc string) *policy.Policy {
	t.Helper()
	pol := fzCompileAny(t, doc)
	if pol.Name != "team-ml" {
		t.Fatalf("policy %q, want team-ml", pol.Name)
	}
	return pol
}

// fzCompileAny is fzCompile for any policies: the effective policy of a namespace labelled team: ml.
func fzCompileAny(t testing.TB, doc string) *policy.Policy {
	t.Helper()
	pol, err := policy.LoadResolved(strings.NewReader(doc), map[string]string{annotations.Team: "ml"})
	if err != nil {
		t.Fatal(err)
	}
	if pol.Err != nil {
		t.Fatalf("policy %q: %v", pol.Name, pol.Err)
	}
	return pol
}

// fzSeeds are the examples, the benchmark payloads and the real-world samples, as JSON.
func fzSeeds(f *testing.F) [][]byte {
	var seeds [][]byte
	for _, glob := range []string{"../../examples/*.yaml", "testdata/bench/*.yaml", "testdata/realworld/*.yaml"} {
		files, err := filepath.Glob(glob)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			for _, doc := range bytes.Split(b, []byte("\n---")) {
				raw, err := yaml.YAMLToJSON(doc)
				if err != nil || len(raw) < 2 || raw[0] != '{' {
					continue
				}
				seeds = append(seeds, raw)
			}
		}
	}
	if len(seeds) == 0 {
		f.Fatal("no seed objects")
	}
	return seeds
}

// fzAnnotate sets the non-empty values on a JSON object's annotations. Input that is not an object with
// an object (or no) metadata goes through byte for byte, so byte-level mutations reach Admit as they are.
func fzAnnotate(raw []byte, values []string) []byte {
	set := false
	for _, v := range values {
		set = set || v != ""
	}
	if !set {
		return raw
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var doc map[string]any
	if d.Decode(&doc) != nil || doc == nil {
		return raw
	}
	meta, ok := doc["metadata"].(map[string]any)
	if doc["metadata"] != nil && !ok {
		return raw
	}
	if meta == nil {
		meta = map[string]any{}
	}
	annots, ok := meta["annotations"].(map[string]any)
	if meta["annotations"] != nil && !ok {
		return raw
	}
	if annots == nil {
		annots = map[string]any{}
	}
	for i, v := range values {
		if v != "" {
			annots[fzKeys[i]] = v
		}
	}
	meta["annotations"] = annots
	doc["metadata"] = meta
	out, err := json.Marshal(doc)
	if err != nil {
		return raw
	}
	return out
}

// FuzzMutate varies the Kaiwo annotations and the bytes of the object. Properties: Admit never panics;
// it either denies with a *mutate.Denial (or fails to decode what is not a supported object), or allows,
// managed or not; an allowed patch applies, decodes to the object Mutate returns with every leaf of the
// input it does not change intact (patchtest), and Admit on the result is a silent no-op
// (mutate(mutate(x)) == mutate(x)); Mutate leaves its input object alone. The last argument picks the
// policy: the built-in default or fzTeamPolicy.
func FuzzMutate(f *testing.F) {
	pols := fzPolicies(f)
	for _, seed := range fzSeeds(f) {
		for i, c := range fzCombos {
			f.Add(seed, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], uint8(i))
		}
	}
	f.Fuzz(func(t *testing.T, obj []byte, gpus, vendor, replicas, perReplica, env, shm, queue, container, ttl string, pol uint8) {
		raw := fzAnnotate(obj, []string{gpus, vendor, replicas, perReplica, env, shm, queue, container, ttl})
		p := pols[int(pol)%len(pols)]
		fzCheckPolicy(t, raw, func(string) *policy.Policy { return p })
	})
}

func fzCheck(t *testing.T, raw []byte) { t.Helper(); fzCheckPolicy(t, raw, rwPolicy) }

func fzCheckPolicy(t *testing.T, raw []byte, polFor func(string) *policy.Policy) {
	t.Helper()
	decoded, _, decErr := kinds.Decode(raw)
	res, err := kinds.Admit(raw, polFor, rwUser)
	if err != nil {
		if res != nil {
			t.Errorf("Admit returned both a result and an error: %v", err)
		}
		// Only a legitimate refusal ends the check: a *mutate.Denial, or the decoder's own error on what
		// does not decode. Anything else (an internal error such as a patch that cannot be encoded) fails.
		var d *mutate.Denial
		switch {
		case errors.Is(err, mutate.ErrEncodePatch):
			t.Errorf("an internal error: %v", err)
		case errors.As(err, &d):
			fzCheckDenial(t, err)
		case decErr == nil:
			t.Errorf("Admit failed with a %T, not a *mutate.Denial, on an object that decodes: %v", err, err)
		case err.Error() != decErr.Error():
			t.Errorf("Admit failed with %v, not the decoder's error %v", err, decErr)
		}
		return
	}
	if decErr != nil {
		t.Fatalf("Admit allowed what Decode rejects (%v)", decErr)
	}
	fzCheckPure(t, raw, decoded, polFor(decoded.GetNamespace()))
	if !res.Managed {
		if len(res.Patch) > 0 || len(res.Warnings) > 0 {
			t.Errorf("an unmanaged object got patch %s and warnings %q", rwJSON(res.Patch), res.Warnings)
		}
		return
	}
	out, err := typedpatch.Apply(raw, res.Patch)
	if err != nil {
		t.Fatalf("the patch does not apply: %v\npatch: %s", err, rwJSON(res.Patch))
	}
	if enc, err := typedpatch.Encode(res.Patch); err != nil || !bytes.Equal(enc, mustMarshal(t, res.Patch)) {
		t.Errorf("EncodePatch gives %s (%v), encoding/json %s", enc, err, mustMarshal(t, res.Patch))
	}
	mutated, _, err := kinds.Decode(out)
	if err != nil {
		t.Fatalf("the mutated object does not decode: %v\n%s", err, out)
	}
	if floor := mutate.PatchFloor(raw, decoded, mutated); floor > len(res.Patch) {
		t.Errorf("the patch floor %d is over the patch's %d operations: a mutation could be denied that the patch limit allows", floor, len(res.Patch))
	}
	fzCheckOracle(t, mutate.Input{Object: decoded, Raw: raw, Policy: polFor(decoded.GetNamespace()), User: rwUser}, res.Patch)
	fzCheckValidates(t, out, polFor)
	again, err := kinds.Admit(out, polFor, rwUser)
	if err != nil {
		t.Fatalf("Admit allows the object but denies its own output: %v\ninput:  %s\noutput: %s", err, raw, out)
	}
	if !again.Managed || len(again.Patch) > 0 || len(again.Warnings) > 0 {
		t.Fatalf("not idempotent: the second Admit gives managed=%v, patch %s, warnings %q\ninput:  %s\noutput: %s",
			again.Managed, rwJSON(again.Patch), again.Warnings, raw, out)
	}
}

// fzCheckOracle: the patch, applied to raw, decodes to the object Mutate returns, and every leaf of raw
// the mutation does not change survives byte for byte (patchtest, which shares no code with the patch
// engine).
func fzCheckOracle(t *testing.T, in mutate.Input, patch []jsonpatch.Operation) {
	t.Helper()
	m, err := mutateIn(in)
	if err != nil {
		t.Fatalf("Mutate denies what Admit allows: %v", err)
	}
	if err := patchtest.Check(in.Raw, patch, m.Object); err != nil {
		t.Fatal(err)
	}
}

// fzCheckDenial: err is a *mutate.Denial with reasons, each naming a field.
func fzCheckDenial(t *testing.T, err error) {
	t.Helper()
	var d *mutate.Denial
	if !errors.As(err, &d) {
		t.Fatalf("failed with %T %v, not a denial", err, err)
	}
	if len(d.Errs) == 0 {
		t.Errorf("a denial without reasons: %v", err)
	}
	for _, e := range d.Errs {
		if e.Field == "" || e.Error() == "" {
			t.Errorf("a denial reason that names no field: %#v", e)
		}
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fzCheckPure: Mutate works on a copy.
func fzCheckPure(t *testing.T, raw []byte, obj client.Object, pol *policy.Policy) {
	t.Helper()
	before := obj.DeepCopyObject()
	out, err := mutateIn(mutate.Input{Object: obj, Raw: raw, Policy: pol, User: rwUser})
	if err != nil {
		return
	}
	if !apiequality.Semantic.DeepEqual(before, obj) {
		t.Errorf("Mutate changed its input object")
	}
	if out.Managed && out.Object == obj {
		t.Errorf("Mutate returned its input object as the mutated one")
	}
}

// TestRayJobExplicitZeroTTL: a RayJob's ttlSecondsAfterFinished is a plain int32, so to the Go type 0 and
// unset look alike. Asking for 0 by annotation must be a silent no-op on the second pass (FuzzMutate found
// it warning on every pass), and an explicit 0 in the spec is the user's (delete the cluster at once) and
// must survive rather than become the policy default.
func TestRayJobExplicitZeroTTL(t *testing.T) {
	base := rwReadJSON(t, filepath.Join("testdata", "bench", "rayjob.yaml"))
	t.Run("annotation", func(t *testing.T) {
		fzCheck(t, rwAnnotate(t, base, map[string]string{annotations.TTLSecondsAfter: "0"}))
	})
	t.Run("spec", func(t *testing.T) {
		var doc map[string]any
		if err := json.Unmarshal(base, &doc); err != nil {
			t.Fatal(err)
		}
		spec := doc["spec"].(map[string]any)
		spec["ttlSecondsAfterFinished"], spec["shutdownAfterJobFinishes"] = 0, true
		raw, _ := json.Marshal(doc)
		res, err := kinds.Admit(raw, rwPolicy, rwUser)
		if err != nil {
			t.Fatal(err)
		}
		for _, op := range res.Patch {
			if op.Path == "/spec/ttlSecondsAfterFinished" {
				t.Errorf("the user's ttlSecondsAfterFinished: 0 is overwritten: %s %s %v", op.Operation, op.Path, op.Value)
			}
		}
	})
}

// TestAdmitCaseVariantKeys: Decode reads JSON with encoding/json, which matches keys case-insensitively and
// merges "Spec" into "spec", while the patch is computed on the JSON as written, where "Spec" is an unknown
// key. The webhook then copies content of the unknown key into spec and is not idempotent. The API server
// decodes case-sensitively (sigs.k8s.io/json), so a webhook request cannot carry such keys; `mutate -f`
// reads the user's file as it is.
func TestAdmitCaseVariantKeys(t *testing.T) {
	const tmpl = `{"template":{"spec":{"restartPolicy":"Never","containers":[{"name":"c","image":"i"%s}]}}}`
	raw := `{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j","annotations":{"kaiwo.silogen.ai/gpus":"2"}},` +
		`"spec":` + fmt.Sprintf(tmpl, "") + `,"Spec":` + fmt.Sprintf(tmpl, `,"env":[{"name":"X","value":"1"}]`) + `}`
	res, err := kinds.Admit([]byte(raw), rwPolicy, rwUser)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(rwJSON(res.Patch), `"X"`) {
		t.Errorf("the patch copies env X from the unknown key Spec into spec: %s", rwJSON(res.Patch))
	}
	fzCheck(t, []byte(raw))
}

// TestPolicyPatchKeepsLockedTolerations: tolerations have no patch merge key, so a podTemplatePatch that
// writes tolerations replaces the list. Applied after defaults.tolerations, it drops them, even when they
// are locked, while the warning and the applied record say they were added; and every later pass adds and
// drops them again, with the same warnings. Found by FuzzMutate with a patch like this one.
func TestPolicyPatchKeepsLockedTolerations(t *testing.T) {
	pol := fzCompile(t, strings.Replace(fzTeamPolicy, "      priorityClassName: gpu-high\n",
		"      priorityClassName: gpu-high\n      tolerations: [{key: team, operator: Equal, value: ml, effect: NoSchedule}]\n", 1))
	polFor := func(string) *policy.Policy { return pol }
	raw := rwReadJSON(t, filepath.Join("testdata", "bench", "job.yaml"))
	res, err := kinds.Admit(raw, polFor, rwUser)
	if err != nil {
		return // denying the contradiction, with a reason, would do too
	}
	out, err := typedpatch.Apply(raw, res.Patch)
	if err != nil {
		t.Fatal(err)
	}
	obj := rwDecodeObject(t, out)
	for _, p := range rwPods(obj) {
		for _, want := range pol.Defaults.Tolerations {
			if !slices.ContainsFunc(p.spec.Spec.Tolerations, func(got corev1.Toleration) bool { return apiequality.Semantic.DeepEqual(got, want) }) {
				t.Errorf("%s: the locked toleration %+v of the policy is not there: %+v", p.path, want, p.spec.Spec.Tolerations)
			}
		}
	}
	fzCheckPolicy(t, raw, polFor)
}
