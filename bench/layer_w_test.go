package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/silogen/kaiwo-webhook/internal/shapes"
)

// Bounds each worst shape must stay within through the handler, mutated or denied (issue 11).
const (
	worstBoundMs  = 100
	worstBoundMiB = 64
	worstRuns     = 7
)

// outcome is one request of a worst shape through the handler.
type outcome struct {
	d        time.Duration
	mib      float64
	answer   string // mutated (n ops, bytes), allowed, denied: message
	patchLen int
}

// serveOnce sends body to h once and measures its time and the bytes allocated meanwhile.
func serveOnce(h http.Handler, body []byte) (outcome, error) {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/mutate", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(rec, req)
	d := time.Since(start)
	runtime.ReadMemStats(&after)
	o := outcome{d: d, mib: float64(after.TotalAlloc-before.TotalAlloc) / (1 << 20)}
	var rv admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &rv); err != nil || rv.Response == nil {
		return o, fmt.Errorf("HTTP %d, not a review: %v", rec.Code, err)
	}
	resp := rv.Response
	switch {
	case !resp.Allowed:
		msg := resp.Result.Message
		if len(msg) > 160 {
			msg = msg[:160] + "..."
		}
		o.answer = fmt.Sprintf("denied (%d): %s", resp.Result.Code, msg)
	case len(resp.Patch) > 0:
		var ops []any
		_ = json.Unmarshal(resp.Patch, &ops)
		o.patchLen = len(resp.Patch)
		o.answer = fmt.Sprintf("mutated: %d operations, %d KiB patch", len(ops), len(resp.Patch)/1024)
	default:
		o.answer = "allowed unchanged"
	}
	return o, nil
}

// worstOf is the best of a few runs of one shape (the least disturbed by the machine's other load) for
// time, and the largest allocation.
func worstOf(h http.Handler, body []byte, runs int) (outcome, error) {
	var best outcome
	for i := range runs {
		o, err := serveOnce(h, body)
		if err != nil {
			return o, err
		}
		if i == 0 || o.d < best.d {
			mib := max(best.mib, o.mib)
			best = o
			best.mib = mib
		} else {
			best.mib = max(best.mib, o.mib)
		}
	}
	return best, nil
}

// layerW: the worst shapes a user can send, each through the real handler once it is warm: time and
// bytes allocated, and what the webhook answered.
func layerW(t *testing.T, r *report) {
	x, err := TeamIndex()
	if err != nil {
		t.Fatal(err)
	}
	h := Mutator(IndexPolicies{x})
	var b strings.Builder
	b.WriteString("## W. The worst shapes through the handler (`KAIWO_BENCH=1 go -C bench test . -run TestWorst -v`)\n\n")
	fmt.Fprintf(&b, "Each shape (`internal/shapes`) through the handler as Layer B runs it, under the bench policy: the fastest of %d runs for time "+
		"(the machine's other load only adds time) and the most bytes allocated of them (exact); "+
		"each must be answered within %d ms and %d MiB, mutated or denied.\n\n", worstRuns, worstBoundMs, worstBoundMiB)
	b.WriteString("| shape | request bytes | time | allocated | answer |\n|---|---|---|---|---|\n")
	var worstMs, worstMiB float64
	for _, s := range shapes.Worst() {
		body := Review(Payload{Name: s.Name, Raw: s.Raw, Kind: s.Kind})
		o, err := worstOf(h, body, worstRuns)
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		ms := float64(o.d.Microseconds()) / 1e3
		worstMs, worstMiB = max(worstMs, ms), max(worstMiB, o.mib)
		fmt.Fprintf(&b, "| %s | %d | %.1f ms | %.1f MiB | %s |\n", s.Name, len(body), ms, o.mib, strings.ReplaceAll(o.answer, "|", "\\|"))
		r.detail("worst_"+s.Name, map[string]any{"ms": round(ms, 2), "mib": round(o.mib, 2), "answer": o.answer})
	}
	r.set("worst_request_ms", worstMs)
	r.set("worst_request_mib", worstMiB)
	// Scale: the handler on 8,000 containers over 1,000; linear is 8. Each is timed alone, interleaved,
	// and the fastest run of each counts: on a shared machine the other load only ever adds time.
	small := Review(Payload{Raw: shapes.Containers(1000, 0, 0).Raw, Kind: "Job"})
	large := Review(Payload{Raw: shapes.Containers(8000, 0, 0).Raw, Kind: "Job"})
	var fast [2]time.Duration
	for i := range 15 {
		for j, body := range [][]byte{small, large} {
			o, err := serveOnce(h, body)
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 || o.d < fast[j] {
				fast[j] = o.d
			}
		}
	}
	scale := float64(fast[1]) / float64(fast[0])
	r.set("scale_containers_8k_vs_1k", scale)
	fmt.Fprintf(&b, "\nScale: the handler on a Job of 8,000 containers takes %.2fx its time on 1,000 (%v and %v, the fastest of 15 interleaved runs each; linear is 8). "+
		"The 8,000-container Job is denied at the patch limit (at least 16,000 operations, read off the mutated object before the patch is computed), so the figure measures decode and mutation; the 1,000-container Job is mutated in full (decode, mutation, diff, fit, encoding).\n\n",
		scale, fast[1].Round(time.Microsecond), fast[0].Round(time.Microsecond))
	r.section("W-worst", b.String())
}

// TestWorst runs Layer W alone (KAIWO_BENCH=1 go -C bench test . -run TestWorst -v) and logs its table;
// it asserts nothing about time (pkg/mutate and pkg/server test the answers).
func TestWorst(t *testing.T) {
	if os.Getenv(suiteEnv) == "" {
		t.Skipf("set %s=1 to measure the worst shapes", suiteEnv)
	}
	r := newReport()
	layerW(t, r)
	t.Log("\n" + r.sections["W-worst"])
	for k, v := range r.figures {
		t.Logf("%s = %.4g", k, v)
	}
}
