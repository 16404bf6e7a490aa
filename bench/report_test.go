package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// report collects every figure of a run and writes BENCHMARKS.md and results.json.
type report struct {
	mu       sync.Mutex
	figures  map[string]float64
	details  map[string]any
	sections map[string]string
	notes    map[string][]string
	findings []string
	layers   []string
	machine  [][2]string
	started  time.Time
	total    time.Duration
	loadAvg  [2]string
	baseline map[string]any // figures of baselineFile; nil when it cannot be read
}

func newReport() *report {
	r := &report{figures: map[string]float64{}, details: map[string]any{}, sections: map[string]string{},
		notes: map[string][]string{}, started: time.Now()}
	r.machine = machineInfo()
	r.loadAvg[0] = loadAvg()
	if b, err := os.ReadFile(baselineFile); err == nil {
		_ = json.Unmarshal(b, &r.baseline)
	}
	return r
}

func (r *report) set(key string, v float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.figures[key] = v
}

func (r *report) detail(key string, v any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.details[key] = v
}

func (r *report) section(layer, md string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sections[layer] = md
}

func (r *report) note(layer, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes[layer] = append(r.notes[layer], fmt.Sprintf(format, args...))
}

func (r *report) finding(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.findings = append(r.findings, fmt.Sprintf(format, args...))
}

func (r *report) layerTime(name string, d time.Duration, ok bool) {
	status := "ok"
	if !ok {
		status = "FAILED (see the test log)"
	}
	r.layers = append(r.layers, fmt.Sprintf("%s: %v, %s", name, d.Round(time.Second), status))
}

func (r *report) finish(d time.Duration) {
	r.total = d
	r.loadAvg[1] = loadAvg()
}

func (r *report) write(mdPath, jsonPath string) error {
	out := map[string]any{}
	for _, k := range resultKeys {
		if v, ok := r.figures[k]; ok {
			out[k] = round(v, 4)
		} else {
			out[k] = nil // not measured in this run; BENCHMARKS.md says why
		}
	}
	for _, g := range laterGoals {
		if v, ok := r.figures[g.key]; ok {
			out[g.key] = round(v, 4)
		}
	}
	gs := map[string]any{}
	for _, g := range goals {
		if g.bound == 0 {
			continue
		}
		op := ">="
		if g.atMost {
			op = "<="
		}
		v, ok := r.figures[g.key]
		gs[g.key] = map[string]any{"goal": op + " " + fmtNum(g.bound), "met": ok && met(g, v)}
	}
	out["goals"] = gs
	out["details"] = r.details
	m := map[string]string{}
	for _, kv := range r.machine {
		m[kv[0]] = kv[1]
	}
	m["load average at start"], m["load average at end"] = r.loadAvg[0], r.loadAvg[1]
	out["machine"] = m
	out["generated"] = r.started.UTC().Format(time.RFC3339)
	out["duration_seconds"] = math.Round(r.total.Seconds())
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(jsonPath, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(mdPath, r.markdown(), 0o644)
}

func met(g goal, v float64) bool {
	if g.atMost {
		return v <= g.bound
	}
	return v >= g.bound
}

func (r *report) markdown() []byte {
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Benchmarks\n\n")
	w("Written by `make bench` (`hack/bench.sh`, which runs `go -C bench test . -run '^TestSuite$'` with `%s=1`) on %s; do not edit by hand.\n", suiteEnv, r.started.UTC().Format("2006-01-02 15:04 MST"))
	w("The run took %v.\n\n", r.total.Round(time.Second))
	w("This machine is shared and noisy, so every figure is a ratio against a baseline measured in the same run,\n")
	w("interleaved with it (floor, ours, peer, floor, ours, peer, ...), and the ratio reported is the median over rounds.\n")
	w("Absolute numbers are reported beside each ratio, never asserted.\n\n")
	w("## Machine\n\n| | |\n|---|---|\n")
	for _, kv := range r.machine {
		w("| %s | %s |\n", kv[0], kv[1])
	}
	w("| load average (1, 5, 15 min) at start | %s |\n| load average at end | %s |\n\n", r.loadAvg[0], r.loadAvg[1])
	w("## Command\n\n```sh\nmake bench    # = hack/bench.sh: KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh) %s=1 go -C bench test . -run '^TestSuite$' -count=1 -v\n```\n\n", suiteEnv)
	w("Layers: %s.\n\n", strings.Join(r.layers, "; "))
	w("## Summary\n\n")
	if gen, ok := r.baseline["generated"].(string); ok {
		w("**before** is the run of %s, before the fixes below (`bench/%s`); **now** is this run.\n\n", gen, baselineFile)
	}
	w("| figure | key | before | now | goal | met |\n|---|---|---|---|---|---|\n")
	for _, g := range append(slices.Clip(goals), laterGoals...) {
		v, ok := r.figures[g.key]
		val, goalText, metText, before := "not measured", "-", "-", "-"
		if ok {
			val = fmtFigure(g.key, v)
		}
		if bv, ok := r.baseline[g.key].(float64); ok {
			before = fmtFigure(g.key, bv)
		}
		if g.bound != 0 {
			op := ">="
			if g.atMost {
				op = "<="
			}
			goalText = op + " " + fmtFigure(g.key, g.bound)
			switch {
			case !ok:
				metText = "not measured"
			case met(g, v):
				metText = "met"
			default:
				metText = "**missed**"
			}
		}
		w("| %s | `%s` | %s | %s | %s | %s |\n", g.what, g.key, before, val, goalText, metText)
	}
	w("\n")
	if r.baseline != nil {
		w("## Fixed since the baseline\n\n")
		for _, f := range fixes {
			w("- %s\n", f)
		}
		w("\n")
	}
	if len(r.findings) > 0 {
		w("## What dominates\n\n")
		for _, f := range r.findings {
			w("- %s\n", f)
		}
		w("\n")
	}
	for _, l := range []string{"A-core", "B-handler", "W-worst", "C-tls", "D-apiserver", "E-policy-scale"} {
		if s, ok := r.sections[l]; ok {
			b.WriteString(s)
			if !strings.HasSuffix(s, "\n\n") {
				b.WriteString("\n")
			}
		}
		for _, n := range r.notes[l] {
			w("- %s\n", n)
		}
		if len(r.notes[l]) > 0 {
			w("\n")
		}
	}
	b.WriteString(payloadSection())
	return b.Bytes()
}

func payloadSection() string {
	var b strings.Builder
	b.WriteString("## Payloads\n\n`bench/testdata/payloads`, generated from `bench/testdata/src` by `go -C bench test . -run TestPayloads -update`; ")
	b.WriteString("every request carries the namespace `team-ml` under `bench/testdata/policy.yaml` (the SPEC's team-ml policy: ")
	b.WriteString("tolerations, nodeSelector, pull secret, priority class, TTL and a podTemplatePatch) and the user `alice@example.com`. ")
	b.WriteString("A `-mutated` payload is the webhook's own output: a reinvocation, or (Deployment, RayService) a re-apply sent as an UPDATE.\n\n")
	b.WriteString("| payload | kind | bytes (compact JSON) | what |\n|---|---|---|---|\n")
	what := map[string]string{
		"job2k":      "a fine-tuning Job as the API server sends it (defaults filled in): 4 GPUs, env with a Secret value and a mounted Secret key, code ConfigMap, /dev/shm size",
		"job8k":      "a pretraining Job applied with `kubectl apply`: managedFields and the last-applied-configuration annotation, an init container",
		"rayjob":     "a RayJob: head, a GPU worker group and a CPU worker group, a submitter template; 16 GPUs planned as 2 x 8",
		"deployment": "a vLLM Deployment, 1 GPU per replica, probes",
		"rayservice": "a RayService, 16 GPUs planned as 2 x 8, GPU model affinity",
		"env1000":    "pathological: job2k with 1,000 env vars in `kaiwo.silogen.ai/env`",
	}
	ps, err := LoadAll()
	if err != nil {
		return b.String() + "(payloads unreadable: " + err.Error() + ")\n"
	}
	for _, p := range ps {
		w := what[strings.TrimSuffix(p.Name, MutatedSuffix)]
		if p.Mutated {
			w = "already mutated"
			if p.Update() {
				w += ", sent as an UPDATE"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s |\n", p.Name, p.Kind, len(p.Raw), w)
	}
	return b.String()
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func machineInfo() [][2]string {
	cpu := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := "unknown"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0]); len(f) >= 2 {
			var kb float64
			fmt.Sscan(f[1], &kb)
			mem = fmt.Sprintf("%.1f GiB", kb/(1<<20))
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	commit := "unknown"
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		commit = strings.TrimSpace(string(out))
		if out, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
			commit += " (with uncommitted changes)"
		}
	}
	return [][2]string{
		{"CPU", fmt.Sprintf("%s, %d logical CPUs (shared with other builds)", cpu, runtime.NumCPU())},
		{"memory", mem},
		{"OS", fmt.Sprintf("%s/%s, Linux %s", runtime.GOOS, runtime.GOARCH, strings.TrimSpace(string(kernel)))},
		{"Go", runtime.Version()},
		{"commit", commit},
	}
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], ", ")
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// percentile is the nearest-rank q-quantile of ds (0 < q <= 1).
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func spread(xs []float64) string {
	if len(xs) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f-%.2f", slices.Min(xs), slices.Max(xs))
}

// TestResultsFile checks the committed results.json: every key of issue 6 is there, as a number > 0,
// and BENCHMARKS.md reports each. It does not judge the figures, which depend on the machine.
func TestResultsFile(t *testing.T) {
	b, err := os.ReadFile("results.json")
	if err != nil {
		t.Fatalf("%v; run make bench", err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	md, err := os.ReadFile("../BENCHMARKS.md")
	if err != nil {
		t.Fatalf("%v; run make bench", err)
	}
	for _, k := range resultKeys {
		v, ok := got[k].(float64)
		if !ok || !(v > 0) || math.IsInf(v, 0) {
			t.Errorf("results.json: %s = %v, want a number > 0", k, got[k])
		}
		if !bytes.Contains(md, []byte("`"+k+"`")) {
			t.Errorf("BENCHMARKS.md does not report %s", k)
		}
	}
	if _, ok := got["machine"].(map[string]any); !ok {
		t.Errorf("results.json has no machine")
	}
}

// TestReportHelpers pins the statistics the report relies on.
func TestReportHelpers(t *testing.T) {
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median = %v, want 2", got)
	}
	if got := median([]float64{4, 1, 2, 3}); got != 2.5 {
		t.Errorf("median = %v, want 2.5", got)
	}
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if p50, p99 := percentile(ds, 0.5), percentile(ds, 0.99); p50 != 50*time.Millisecond || p99 != 99*time.Millisecond {
		t.Errorf("p50, p99 = %v, %v; want 50ms, 99ms", p50, p99)
	}
	if len(goals) != len(resultKeys) {
		t.Errorf("%d goals for %d keys", len(goals), len(resultKeys))
	}
	for i, g := range goals {
		if g.key != resultKeys[i] {
			t.Errorf("goal %d is %s, want %s", i, g.key, resultKeys[i])
		}
	}
}
