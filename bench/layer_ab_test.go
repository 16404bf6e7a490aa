package bench

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"
)

// layerA: the pure core, whole (Admit) and by stage, on every payload.
func layerA(t *testing.T, r *report) {
	pol := mustPolicy(t)
	var b strings.Builder
	b.WriteString("## A. The pure core (`go -C bench test -bench BenchmarkCore -benchmem .`)\n\n")
	b.WriteString("`Registry.Admit` = `Decode` + `Mutate` + `Patch`; each stage measured alone as well.\n\n")
	b.WriteString("| payload | admit | B/op | allocs/op | decode | mutate | patch | patch B/op |\n|---|---|---|---|---|---|---|---|\n")
	for _, p := range mustPayloads(t) {
		res := map[string]testing.BenchmarkResult{}
		for _, stage := range coreStages {
			res[stage.name] = testing.Benchmark(func(b *testing.B) { stage.bench(b, p, pol) })
			if res[stage.name].N == 0 {
				t.Fatalf("%s/%s failed", stage.name, p.Name)
			}
		}
		a := res["admit"]
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %s | %s | %s | %d |\n", p.Name, us(a), a.AllocedBytesPerOp(), a.AllocsPerOp(),
			us(res["decode"]), us(res["mutate"]), us(res["patch"]), res["patch"].AllocedBytesPerOp())
		r.detail("core_admit_ns_"+p.Name, a.NsPerOp())
		r.detail("core_admit_bytes_"+p.Name, a.AllocedBytesPerOp())
		r.detail("core_decode_ns_"+p.Name, res["decode"].NsPerOp())
		if p.Name == "job8k" {
			share := func(s string) float64 {
				return 100 * float64(res[s].AllocedBytesPerOp()) / float64(a.AllocedBytesPerOp())
			}
			r.finding("Core, 8 KB Job (A): of %d B allocated by `Registry.Admit`, decode %.0f%%, mutate %.0f%%, patch %.0f%% (bytes are exact; times on this shared machine are not).",
				a.AllocedBytesPerOp(), share("decode"), share("mutate"), share("patch"))
		}
	}
	b.WriteString("\n")
	r.section("A-core", b.String())
}

// decodeShare says what decoding the 8 KB Job alone (Layer A) costs against the floor's whole request.
func decodeShare(r *report, floorNs float64) string {
	r.mu.Lock()
	d, ok := r.details["core_decode_ns_job8k"].(int64)
	r.mu.Unlock()
	if !ok || floorNs == 0 {
		return "the typed decode of the object (Layer A) was not measured in this run."
	}
	return fmt.Sprintf("the typed decode of the object alone (Layer A) takes %.0f µs, %.2fx the floor's whole request.", float64(d)/1e3, float64(d)/floorNs)
}

func us(res testing.BenchmarkResult) string {
	return fmt.Sprintf("%.0f µs", float64(res.NsPerOp())/1e3)
}

// layerB: the whole handler through httptest, ours against the floor and the peer, interleaved.
func layerB(t *testing.T, r *report) {
	x, err := TeamIndex()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("## B. The whole handler through httptest (`go -C bench test -bench BenchmarkHandler -benchmem .`)\n\n")
	b.WriteString("One AdmissionReview in, one out: controller-runtime's `admission.Webhook` decoding the review, then the handler, then the response encoded. ")
	b.WriteString("**noop** is the floor, an `admission.HandlerFunc` that returns Allowed; **kaiwo** is `server.Mutator` (policy lookup, `mutate.AdmitRequest`, metrics); ")
	b.WriteString("**defaulter** is the peer, `admission.WithCustomDefaulter` with a defaulter that calls `mutate.Mutate` and copies the result into the object, ")
	b.WriteString("so controller-runtime decodes, marshals and diffs. Times are medians over the rounds; ratios are the median of the per-round ratios (range in brackets).\n\n")
	b.WriteString("| payload | noop | kaiwo | defaulter | kaiwo / noop | defaulter / noop | kaiwo B/op | defaulter B/op | noop B/op |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range mustPayloads(t) {
		hs, err := handlers(x, p.Kind)
		if err != nil {
			t.Fatal(err)
		}
		body := Review(p)
		rounds := 3
		if p.Name == "job8k" || p.Name == "rayjob" {
			rounds = 7
		}
		ns := map[string][]float64{}
		bytesOp := map[string]int64{}
		var ratios, peerRatios []float64
		for range rounds {
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
			ratios = append(ratios, cur["kaiwo"]/cur["noop"])
			peerRatios = append(peerRatios, cur["defaulter"]/cur["noop"])
		}
		ratio, peer := median(ratios), median(peerRatios)
		fmt.Fprintf(&b, "| %s | %.0f µs | %.0f µs | %.0f µs | %.2fx (%s) | %.2fx (%s) | %d | %d | %d |\n", p.Name,
			median(ns["noop"])/1e3, median(ns["kaiwo"])/1e3, median(ns["defaulter"])/1e3, ratio, spread(ratios), peer, spread(peerRatios),
			bytesOp["kaiwo"], bytesOp["defaulter"], bytesOp["noop"])
		r.detail("handler_ns_"+p.Name, map[string]float64{"noop": median(ns["noop"]), "kaiwo": median(ns["kaiwo"]), "defaulter": median(ns["defaulter"])})
		r.detail("handler_bytes_"+p.Name, bytesOp)
		r.detail("handler_vs_defaulter_"+p.Name, round(median(ns["kaiwo"])/median(ns["defaulter"]), 3))
		switch p.Name {
		case "job8k":
			r.finding("Peer (B): on the 8 KB Job the stock controller-runtime CustomDefaulter doing the same mutation is at %.2fx the floor and ours at %.2fx; "+
				"ours takes %.2fx the defaulter's time and %.2fx its bytes. The floor only decodes the review; a handler that must also decode the object "+
				"into its Go type, mutate a copy and encode a patch pays a multiple of it whatever else it does: %s", peer, ratio,
				median(ns["kaiwo"])/median(ns["defaulter"]), float64(bytesOp["kaiwo"])/float64(bytesOp["defaulter"]), decodeShare(r, median(ns["noop"])))
			r.set("handler_job8k_vs_noop", ratio)
			r.detail("handler_bytes_per_job8k", bytesOp["kaiwo"])
		case "rayjob":
			r.set("handler_rayjob_vs_noop", ratio)
		}
	}
	b.WriteString("\n")
	r.section("B-handler", b.String())
	layerBValidate(t, r)
	job8k, err := Load("job8k")
	if err != nil {
		t.Fatal(err)
	}
	profileJob8k(t, r, Mutator(IndexPolicies{x}), Review(job8k))
}

// profileJob8k runs the handler on job8k under the CPU profiler and reports the cumulative share of
// the stages that matter, as `go tool pprof -top -cum` prints them.
func profileJob8k(t *testing.T, r *report, h http.Handler, body []byte) {
	dir := t.TempDir()
	prof := filepath.Join(dir, "cpu.pprof")
	f, err := os.Create(prof)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for n := 0; n < 5000 && time.Now().Before(deadline); n++ {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/mutate", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(rec, req)
	}
	pprof.StopCPUProfile()
	f.Close()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount=400", exe, prof).Output()
	if err != nil {
		r.note("B-handler", "profile: go tool pprof failed: %v", err)
		return
	}
	cum := pprofCum(string(out))
	base := cum["sigs.k8s.io/controller-runtime/pkg/webhook/admission.(*Webhook).ServeHTTP"]
	if base == 0 {
		r.note("B-handler", "profile: no samples of the handler")
		return
	}
	stages := []struct{ name, fn string }{
		{"the review decoded by controller-runtime (the floor does this too)", "k8s.io/apimachinery/pkg/runtime/serializer/json.(*Serializer).Decode"},
		{"`mutate.AdmitRequest`", "github.com/silogen/kaiwo-webhook/pkg/mutate.AdmitRequest"},
		{"`Kind.Decode`", "github.com/silogen/kaiwo-webhook/pkg/mutate.Kind.Decode"},
		{"`mutate.Mutate`", "github.com/silogen/kaiwo-webhook/pkg/mutate.Mutate"},
		{"  the policy's podTemplatePatch (strategic merge, `mergePodTemplatePatch`)", "github.com/silogen/kaiwo-webhook/pkg/mutate.mergePodTemplatePatch"},
		{"  annotation parsing (`ParseOptions`)", "github.com/silogen/kaiwo-webhook/pkg/annotations.ParseOptions"},
		{"  of which the env YAML (`ParseEnv`)", "github.com/silogen/kaiwo-webhook/pkg/annotations.ParseEnv"},
		{"  the deep copy of the object", "k8s.io/api/batch/v1.(*Job).DeepCopyObject"},
		{"`typedpatch.Diff`", "github.com/silogen/kaiwo-webhook/pkg/typedpatch.Diff"},
		{"  the diff of the Go values (`typedDiff`)", "github.com/silogen/kaiwo-webhook/pkg/typedpatch.typedDiff"},
		{"  raw read along the paths (`fitToRaw`)", "github.com/silogen/kaiwo-webhook/pkg/typedpatch.fitToRaw"},
		{"  JSON diff (`jsonpatch.CreatePatch`, the fallback)", "gomodules.xyz/jsonpatch/v2.CreatePatch"},
		{"  `encoding/json.Marshal` (whole handler)", "encoding/json.Marshal"},
		{"garbage collection (`runtime.gcBgMarkWorker`)", "runtime.gcBgMarkWorker"},
	}
	var parts []string
	for _, s := range stages {
		if v, ok := cum[s.fn]; ok {
			parts = append(parts, fmt.Sprintf("%s %.0f%%", strings.TrimSpace(s.name), 100*v/base))
		}
	}
	r.finding("CPU profile of the handler on the 8 KB Job (B, share of `admission.Webhook.ServeHTTP` cumulative time): %s.", strings.Join(parts, ", "))
}

// pprofCum parses `go tool pprof -top -cum` into function -> cumulative seconds.
func pprofCum(top string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(top, "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasSuffix(f[4], "%") {
			continue
		}
		v, ok := pprofSeconds(f[3])
		if !ok {
			continue
		}
		out[strings.Join(f[5:], " ")] = v
	}
	return out
}

func pprofSeconds(s string) (float64, bool) {
	unit := 1.0
	switch {
	case strings.HasSuffix(s, "ms"):
		unit, s = 1e-3, strings.TrimSuffix(s, "ms")
	case strings.HasSuffix(s, "us"):
		unit, s = 1e-6, strings.TrimSuffix(s, "us")
	case strings.HasSuffix(s, "s"):
		s = strings.TrimSuffix(s, "s")
	case strings.HasSuffix(s, "min"):
		unit, s = 60, strings.TrimSuffix(s, "min")
	}
	v, err := strconv.ParseFloat(s, 64)
	return v * unit, err == nil
}
