package bench

import (
	"flag"
	"github.com/go-logr/logr"
	"os"
	"path/filepath"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"testing"
	"time"
)

// suiteEnv turns the suite on; make bench (hack/bench.sh) sets it. Plain go test skips the suite, which
// takes minutes, a real API server and all of a core.
const suiteEnv = "KAIWO_BENCH"

// TestSuite runs every layer and rewrites ../BENCHMARKS.md and results.json. Each figure is a ratio
// against a baseline measured in the same run, interleaved with it; nothing here asserts a figure.
func TestSuite(t *testing.T) {
	if os.Getenv(suiteEnv) == "" {
		t.Skipf("set %s=1 to run the benchmark suite (make bench)", suiteEnv)
	}
	benchtime := os.Getenv("KAIWO_BENCHTIME")
	if benchtime == "" {
		benchtime = "200ms"
	}
	if err := flag.Set("test.benchtime", benchtime); err != nil {
		t.Fatal(err)
	}
	logf.SetLogger(logr.Discard()) // controller-runtime's admission webhook logs at V(5) only; quiet it
	serverBin.dir = t.TempDir()
	r := newReport()
	start := time.Now()
	layers := []struct {
		name string
		run  func(*testing.T, *report)
	}{
		{"A-core", layerA},
		{"B-handler", layerB},
		{"W-worst", layerW},
		{"C-tls", layerC},
		{"E-policy-scale", layerE},
		{"D-apiserver", layerD},
	}
	ran := 0
	for _, l := range layers {
		began := time.Now()
		ok := t.Run(l.name, func(t *testing.T) { ran++; l.run(t, r) })
		r.layerTime(l.name, time.Since(began), ok)
	}
	r.finish(time.Since(start))
	if ran < len(layers) {
		t.Logf("%d of %d layers ran (-run selected some): BENCHMARKS.md and results.json are left as they are", ran, len(layers))
		for k, v := range r.figures {
			t.Logf("%s = %.4g", k, v)
		}
		for _, f := range r.findings {
			t.Log(f)
		}
		return
	}
	if err := r.write(filepath.Join("..", "BENCHMARKS.md"), "results.json"); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote BENCHMARKS.md and bench/results.json in %v", time.Since(start).Round(time.Second))
}
