package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// validatePayload is what the validating webhook sees of the 8 KB Job: the final object, after the
// mutating webhook, on CREATE.
const validatePayload = "job8k" + MutatedSuffix

// validateKey is the figure of the validating call, in its own row beside the Mutator's.
const validateKey = "handler_validate_job8k_vs_noop"

// laterGoals are figures added after issue 6, each in its own row: results.json and BENCHMARKS.md
// report them once a run measured them (the files committed before have none).
var laterGoals = []goal{
	{validateKey, "validating handler, the mutated 8 KB Job, vs the no-op floor (B)", true, 0},
	{"handler_jobset_vs_noop", "handler, 9 KB JobSet (a multi-pod kind beside the RayJob), vs the no-op floor (B)", true, 0},
}

// BenchmarkValidate: the workload validator (decode, policy lookup, mutate.Validate, metrics)
// through httptest on the mutated 8 KB Job, against the no-op floor.
func BenchmarkValidate(b *testing.B) {
	x, err := TeamIndex()
	if err != nil {
		b.Fatal(err)
	}
	p, err := Load(validatePayload)
	if err != nil {
		b.Fatal(err)
	}
	body := Review(p)
	for _, h := range []namedHandler{{"noop", Noop()}, {"validate", Validator(IndexPolicies{x})}} {
		b.Run(h.name+"/"+p.Name, func(b *testing.B) { serve(b, h.h, body) })
	}
}

// layerBValidate measures the validating call as Layer B measures the Mutator: interleaved with
// the floor, the median of the per-round ratios. It adds its own row and changes no other figure.
func layerBValidate(t *testing.T, r *report) {
	x, err := TeamIndex()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Load(validatePayload)
	if err != nil {
		t.Fatal(err)
	}
	body := Review(p)
	hs := []namedHandler{{"noop", Noop()}, {"validate", Validator(IndexPolicies{x})}}
	ns := map[string][]float64{}
	bytesOp := map[string]int64{}
	var ratios []float64
	for range 7 {
		cur := map[string]float64{}
		for _, h := range hs {
			res := testing.Benchmark(func(b *testing.B) { serve(b, h.h, body) })
			if res.N == 0 {
				t.Fatalf("%s/%s failed", h.name, p.Name)
			}
			cur[h.name] = float64(res.NsPerOp())
			ns[h.name] = append(ns[h.name], cur[h.name])
			bytesOp[h.name] = res.AllocedBytesPerOp()
		}
		ratios = append(ratios, cur["validate"]/cur["noop"])
	}
	ratio := median(ratios)
	r.set(validateKey, ratio)
	r.detail("handler_validate_ns_"+p.Name, map[string]float64{"noop": median(ns["noop"]), "validate": median(ns["validate"])})
	r.detail("handler_validate_bytes_"+p.Name, bytesOp)
	r.note("B-handler", "%s", validateRow(p.Name, median(ns["noop"]), median(ns["validate"]), ratio, spread(ratios), bytesOp["validate"]))
}

// validateRow is the line BENCHMARKS.md gives the validating call under Layer B.
func validateRow(payload string, noopNs, validateNs, ratio float64, spread string, bytesOp int64) string {
	return fmt.Sprintf("Validating webhook (`server.WorkloadValidator`, `%s`): CREATE of %s, the object as the mutating webhook left it: "+
		"noop %.0f µs, validate %.0f µs, %.2fx the floor (%s), %d B/op.", validateKey, payload, noopNs/1e3, validateNs/1e3, ratio, spread, bytesOp)
}

// TestReportHasTheValidateRow: a run that measured the validating call writes its figure to
// results.json and a summary row to BENCHMARKS.md; a run that did not says so and writes no figure.
func TestReportHasTheValidateRow(t *testing.T) {
	for _, measured := range []bool{true, false} {
		r := newReport()
		if measured {
			r.set(validateKey, 1.234)
		}
		dir := t.TempDir()
		md, js := filepath.Join(dir, "BENCHMARKS.md"), filepath.Join(dir, "results.json")
		if err := r.write(md, js); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(js)
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		m, _ := os.ReadFile(md)
		var row string
		for _, l := range strings.Split(string(m), "\n") {
			if strings.Contains(l, "`"+validateKey+"`") && strings.HasPrefix(l, "| ") {
				row = l
			}
		}
		v, ok := got[validateKey]
		switch {
		case measured && (v != 1.234 || !strings.Contains(row, "1.23")):
			t.Errorf("measured: results.json %s = %v, summary row %q", validateKey, v, row)
		case !measured && (ok || !strings.Contains(row, "not measured")):
			t.Errorf("not measured: results.json %s = %v (present %v), summary row %q", validateKey, v, ok, row)
		}
		for _, k := range resultKeys {
			if _, ok := got[k]; !ok {
				t.Errorf("results.json lost the key %s", k)
			}
		}
	}
}
