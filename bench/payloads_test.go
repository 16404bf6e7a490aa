package bench

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/yaml"

	"github.com/silogen/kaiwo-webhook/pkg/policy"
	"github.com/silogen/kaiwo-webhook/pkg/typedpatch"
)

var update = flag.Bool("update", false, "rewrite testdata/payloads from testdata/src and the current mutation")

const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// generate builds every payload: the bases from testdata/src, env1000 from job2k, and the mutated
// variants by applying the webhook's own patch.
func generate(t *testing.T, pol *policy.Policy) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, base := range Bases {
		if base == "env1000" {
			continue
		}
		src, err := os.ReadFile(filepath.Join("testdata", "src", base+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		docs := strings.Split(string(src), "\n---\n")
		obj := map[string]any{}
		if err := yaml.Unmarshal([]byte(docs[0]), &obj); err != nil {
			t.Fatalf("%s: %v", base, err)
		}
		if len(docs) > 1 {
			// kubectl apply records what the user applied, as compact JSON with a newline.
			applied, err := yaml.YAMLToJSON([]byte(docs[1]))
			if err != nil {
				t.Fatalf("%s: %v", base, err)
			}
			obj["metadata"].(map[string]any)["annotations"].(map[string]any)[lastApplied] = string(applied) + "\n"
		}
		out[base] = marshal(t, obj)
	}
	out["env1000"] = env1000(t, out["job2k"])
	for _, base := range Bases {
		raw := out[base]
		res, err := kinds.Admit(raw, func(string) *policy.Policy { return pol }, User)
		if err != nil {
			t.Fatalf("%s: %v", base, err)
		}
		mutated, err := typedpatch.Apply(raw, res.Patch)
		if err != nil {
			t.Fatalf("%s: %v", base, err)
		}
		out[base+MutatedSuffix] = mutated
	}
	return out
}

// env1000 is job2k with 1,000 plain env vars in its kaiwo.silogen.ai/env annotation.
func env1000(t *testing.T, job2k []byte) []byte {
	t.Helper()
	var obj map[string]any
	if err := json.Unmarshal(job2k, &obj); err != nil {
		t.Fatal(err)
	}
	var env strings.Builder
	env.WriteString("envVars:\n")
	for i := range 1000 {
		fmt.Fprintf(&env, "  - name: FEATURE_FLAG_%04d\n    value: \"value-%04d\"\n", i, i)
	}
	meta := obj["metadata"].(map[string]any)
	meta["name"] = "finetune-env1000"
	meta["annotations"].(map[string]any)["kaiwo.silogen.ai/env"] = env.String()
	return marshal(t, obj)
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func indent(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	buf.WriteByte('\n')
	return buf.Bytes()
}

func benchPolicy(t *testing.T) *policy.Policy {
	t.Helper()
	pol, err := Policy()
	if err != nil {
		t.Fatal(err)
	}
	return pol
}

// TestPayloads checks that the base payloads match their sources and have the sizes and shapes
// BENCHMARKS.md claims, and that each mutated variant is a fixed point of the mutation.
func TestPayloads(t *testing.T) {
	pol := benchPolicy(t)
	want := generate(t, pol)
	if *update {
		dir := filepath.Join("testdata", "payloads")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range want {
			if err := os.WriteFile(filepath.Join(dir, name+".json"), indent(t, b), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	entries, err := os.ReadDir(filepath.Join("testdata", "payloads"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(Names()) {
		t.Errorf("testdata/payloads holds %d files, want %d (%v); run go -C bench test . -run TestPayloads -update", len(entries), len(Names()), Names())
	}
	payloads, err := LoadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range payloads {
		t.Run(p.Name, func(t *testing.T) {
			if !p.Mutated && !bytes.Equal(p.Raw, want[p.Name]) {
				t.Errorf("stale: testdata/payloads/%s.json differs from testdata/src; run go -C bench test . -run TestPayloads -update", p.Name)
			}
			res, err := kinds.Admit(p.Raw, func(string) *policy.Policy { return pol }, User)
			if err != nil {
				t.Fatalf("Admit: %v", err)
			}
			switch {
			case !res.Managed:
				t.Errorf("not managed")
			case p.Mutated && len(res.Patch) > 0:
				t.Errorf("already-mutated variant is not a fixed point: %d patch operations, first %s; run go -C bench test . -run TestPayloads -update", len(res.Patch), res.Patch[0].Json())
			case !p.Mutated && len(res.Patch) == 0:
				t.Errorf("base payload is not mutated")
			}
		})
	}
	sizes := map[string][2]int{ // compact JSON bytes: [min, max]
		"job2k":  {1800, 2400},
		"job8k":  {7500, 8800},
		"rayjob": {8400, 9600},
	}
	for name, r := range sizes {
		p, _ := Load(name)
		if n := len(p.Raw); n < r[0] || n > r[1] {
			t.Errorf("%s is %d bytes, want %d..%d", name, n, r[0], r[1])
		}
	}
	job8k, _ := Load("job8k")
	if !bytes.Contains(job8k.Raw, []byte(lastApplied)) {
		t.Errorf("job8k has no %s annotation", lastApplied)
	}
	ray, _ := Load("rayjob")
	var rj struct {
		Spec struct {
			RayClusterSpec struct {
				HeadGroupSpec    map[string]any   `json:"headGroupSpec"`
				WorkerGroupSpecs []map[string]any `json:"workerGroupSpecs"`
			} `json:"rayClusterSpec"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(ray.Raw, &rj); err != nil || rj.Spec.RayClusterSpec.HeadGroupSpec == nil || len(rj.Spec.RayClusterSpec.WorkerGroupSpecs) != 2 {
		t.Errorf("rayjob: want a head and 2 worker groups (err %v)", err)
	}
	env, _ := Load("env1000")
	if n := bytes.Count(env.Raw, []byte("FEATURE_FLAG_")); n != 1000 {
		t.Errorf("env1000 names %d env vars, want 1000", n)
	}
}

// post sends p's AdmissionReview through h, as Layer B does, and returns the response.
func post(t testing.TB, h http.Handler, body []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/mutate", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", rec.Code, rec.Body)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
		t.Fatalf("decoding response: %v: %s", err, rec.Body)
	}
	return out.Response
}

func applied(t *testing.T, raw []byte, r *admissionv1.AdmissionResponse) map[string]any {
	t.Helper()
	if !r.Allowed {
		t.Fatalf("denied: %v", r.Result)
	}
	out := raw
	if len(r.Patch) > 0 {
		var ops []map[string]any
		if err := json.Unmarshal(r.Patch, &ops); err != nil {
			t.Fatal(err)
		}
		p, err := applyJSONPatch(raw, r.Patch)
		if err != nil {
			t.Fatal(err)
		}
		out = p
	}
	var obj map[string]any
	if err := json.Unmarshal(out, &obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

// TestHandlersAgree checks that the three handlers Layer B compares do what they claim on every
// payload: the floor allows unchanged, and the stock defaulter peer yields the same object as ours.
func TestHandlersAgree(t *testing.T) {
	x, err := TeamIndex()
	if err != nil {
		t.Fatal(err)
	}
	ours, noop := Mutator(IndexPolicies{x}), Noop()
	payloads, err := LoadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range payloads {
		t.Run(p.Name, func(t *testing.T) {
			body := Review(p)
			if r := post(t, noop, body); !r.Allowed || len(r.Patch) > 0 {
				t.Errorf("noop: allowed %v, %d patch bytes", r.Allowed, len(r.Patch))
			}
			peer, err := Defaulter(IndexPolicies{x}, p.Kind)
			if err != nil {
				t.Fatal(err)
			}
			got, want := applied(t, p.Raw, post(t, peer, body)), applied(t, p.Raw, post(t, ours, body))
			// The stock defaulter's patch also adds what its Go types encode for unset fields: empty
			// objects (resources: {}, scaleStrategy: {}) and a status (Ray's quantities encode as "0"),
			// which the API server drops on create; ours leaves them out. Apart from those, they agree.
			delete(got, "status")
			if diff := cmp.Diff(pruneEmpty(want), pruneEmpty(got)); diff != "" {
				t.Errorf("defaulter's object differs from the webhook's (-webhook,+defaulter):\n%s", diff)
			}
			if p.Mutated && !cmp.Equal(want, applied(t, p.Raw, &admissionv1.AdmissionResponse{Allowed: true})) {
				t.Errorf("the webhook changed an already-mutated payload")
			}
		})
	}
}

// pruneEmpty drops the keys whose values are empty objects, recursively.
func pruneEmpty(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range v {
			if m, ok := pruneEmpty(e).(map[string]any); ok && len(m) == 0 {
				continue
			}
			out[k] = pruneEmpty(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = pruneEmpty(e)
		}
		return out
	}
	return v
}
