package offline_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// realSamples are the samples of each kind's own project under testdata/golden/samples, rendered by
// TestGolden (golden file and idempotence) under that directory's Enforce policy; each names its origin:
// the module, the file in it, and for a sample in a design document the YAML block it is copied from.
var realSamples = []struct {
	file, module, origin string
	block                int // 0: the whole file; n: the n-th yaml block of a Markdown document
}{
	{"kuberay-ray-cluster.verl.yaml", "github.com/ray-project/kuberay/ray-operator", "config/samples/ray-cluster.verl.yaml", 0},
	{"kuberay-ray-cluster.autoscaler.yaml", "github.com/ray-project/kuberay/ray-operator", "config/samples/ray-cluster.autoscaler.yaml", 0},
	// The jobset module carries no examples/ directory; its KEPs carry complete JobSets.
	{"jobset-kep672-fine-tune-llm.yaml", "sigs.k8s.io/jobset", "keps/672-serial-job-execution/README.md", 1},
	{"jobset-kep104-driver-ready-worker-start.yaml", "sigs.k8s.io/jobset", "keps/104-StartupPolicy/README.md", 1},
}

// TestRealSamples: every sample in testdata/golden/samples is listed above, and is its origin as the
// module in go.mod holds it, byte for byte.
func TestRealSamples(t *testing.T) {
	listed := map[string]bool{"policy.yaml": true}
	for _, s := range realSamples {
		listed[s.file] = true
		t.Run(s.file, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", s.module).Output()
			dir := strings.TrimSpace(string(out))
			if err != nil || dir == "" {
				t.Fatalf("module %s is not in the module cache (go mod download): %v", s.module, err)
			}
			orig, err := os.ReadFile(filepath.Join(dir, s.origin))
			if err != nil {
				t.Fatal(err)
			}
			if s.block > 0 {
				orig = yamlBlock(orig, s.block)
			}
			got, err := os.ReadFile(filepath.Join("testdata/golden/samples", s.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(orig) == 0 || !bytes.Equal(got, orig) {
				t.Errorf("testdata/golden/samples/%s is not %s %s (block %d) as the module holds it", s.file, s.module, s.origin, s.block)
			}
		})
	}
	files, _ := filepath.Glob("testdata/golden/samples/*.yaml")
	for _, f := range files {
		if !listed[filepath.Base(f)] {
			t.Errorf("%s has no origin in realSamples", f)
		}
	}
}

// yamlBlock is the n-th ```yaml block of a Markdown document, without its fences.
func yamlBlock(md []byte, n int) []byte {
	var out bytes.Buffer
	in, seen := false, 0
	for _, line := range strings.SplitAfter(string(md), "\n") {
		switch {
		case !in && strings.HasPrefix(line, "```yaml"):
			in, seen = true, seen+1
		case in && strings.HasPrefix(line, "```"):
			in = false
		case in && seen == n:
			out.WriteString(line)
		}
	}
	return out.Bytes()
}
