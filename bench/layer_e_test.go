package bench

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var (
	indexForLine = regexp.MustCompile(`^BenchmarkIndexFor/namespaces=(\d+)\S*\s+\d+\s+([\d.]+) ns/op`)
	indexHeap    = regexp.MustCompile(`heap held by an Index of 1000 policies and 10000 namespaces: ([\d.]+) MiB`)
)

// layerE: policy lookup at 1 against 10,000 namespaces under 1,000 policies, by pkg/policy's own
// BenchmarkIndexFor and TestIndexHeap (run, not copied), and the RSS of a server holding the index.
func layerE(t *testing.T, r *report) {
	// Alternate the two sizes, one go test run each, and pair each 10k run with the 1 run before it,
	// so both see the same machine.
	const pairs = 5
	ns := map[int][]float64{}
	var ratios []float64
	for range pairs {
		cur := map[int]float64{}
		for _, n := range []int{1, 10000} {
			out := goTestPolicy(t, "-run", "^$", "-bench", fmt.Sprintf("^BenchmarkIndexFor$/^namespaces=%d$", n), "-benchmem", "-benchtime", "300ms", "-count", "1")
			m := indexForLine.FindStringSubmatch(findLine(out, "BenchmarkIndexFor/"))
			if m == nil {
				t.Fatalf("no BenchmarkIndexFor/namespaces=%d result in:\n%s", n, out)
			}
			cur[n], _ = strconv.ParseFloat(m[2], 64)
			ns[n] = append(ns[n], cur[n])
		}
		ratios = append(ratios, cur[10000]/cur[1])
	}
	r.set("policy_lookup_10k_vs_1", median(ratios))
	var heap []float64
	if m := indexHeap.FindStringSubmatch(goTestPolicy(t, "-run", "^TestIndexHeap$", "-v", "-count", "1")); m != nil {
		v, _ := strconv.ParseFloat(m[1], 64)
		heap = append(heap, v)
	}

	// RSS: a server process that holds the index, against one that holds the same policies and one namespace.
	bin := buildServer(t)
	certDir, clientTLS := selfSigned(t)
	rss := map[int]int64{}
	heapAlloc := map[int]uint64{}
	for _, n := range []int{1, 10000} {
		s := startServer(t, bin, certDir, clientTLS, "-policies", "1000", "-namespaces", strconv.Itoa(n))
		_, rss[n] = s.memory(t)
		heapAlloc[n] = s.stats(t).HeapAlloc
		s.stop()
	}
	r.set("rss_10k_namespaces_mib", mib(rss[10000]))

	var b strings.Builder
	b.WriteString("## E. Policy scale\n\n")
	fmt.Fprintf(&b, "`go test ./pkg/policy -bench 'BenchmarkIndexFor/namespaces=N'`, the package's own benchmark (1,000 policies, each selecting one team label; ")
	fmt.Fprintf(&b, "lookups cycle over the namespaces), run by the suite, not copied: N=1 and N=10000 alternately, %d times each, one process each; and its `TestIndexHeap`. ", pairs)
	b.WriteString("RSS: `benchserver -policies 1000 -namespaces N` builds the same shape of index (`bench.ScaleIndex`), collects garbage, returns it to the OS, and serves; VmRSS is read once it serves.\n\n")
	b.WriteString("| | 1 namespace | 10,000 namespaces | 10,000 / 1 |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| `Index.For` (median of %d) | %.1f ns | %.1f ns | %.2fx (%s) |\n", pairs, median(ns[1]), median(ns[10000]), median(ratios), spread(ratios))
	fmt.Fprintf(&b, "| server VmRSS | %.1f MiB | %.1f MiB | %.2fx |\n", mib(rss[1]), mib(rss[10000]), float64(rss[10000])/float64(rss[1]))
	fmt.Fprintf(&b, "| server heap in use | %.1f MiB | %.1f MiB | |\n", float64(heapAlloc[1])/(1<<20), float64(heapAlloc[10000])/(1<<20))
	if len(heap) > 0 {
		fmt.Fprintf(&b, "| heap held by the index alone (`TestIndexHeap`) | | %.1f MiB | |\n", median(heap))
	}
	b.WriteString("\n")
	r.section("E-policy-scale", b.String())
	r.detail("policy_lookup_ns", map[string]float64{"1": median(ns[1]), "10000": median(ns[10000])})
	r.detail("rss_mib", map[string]float64{"1_namespace": mib(rss[1]), "10000_namespaces": mib(rss[10000])})
	r.detail("rss_10k_vs_1", round(float64(rss[10000])/float64(rss[1]), 3))
	if len(heap) > 0 {
		r.detail("index_heap_10k_mib", median(heap))
	}
}

func goTestPolicy(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"test", "./pkg/policy"}, args...)...)
	cmd.Dir = ".." // the main module: bench is a module of its own
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go test ./pkg/policy %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func findLine(out, prefix string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), prefix) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}
