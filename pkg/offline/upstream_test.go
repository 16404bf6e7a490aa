package offline_test

import (
	"bytes"
	"go/build"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

// upstreamSamples are golden inputs (rendered and checked for idempotence by TestGolden) copied from the
// kinds' own modules, as the module cache holds them: the copy is the first document of the origin with
// the kaiwo.silogen.ai annotations added, and nothing else changed.
var upstreamSamples = map[string]string{
	"testdata/golden/upstream-lws-vllm-gpu.yaml":      "sigs.k8s.io/lws@v0.8.0/docs/examples/vllm/GPU/lws.yaml",
	"testdata/golden/upstream-pytorchjob-simple.yaml": "github.com/kubeflow/training-operator@v1.9.3/examples/pytorch/simple.yaml",
	"testdata/golden/upstream-trainjob-lammps.yaml":   "github.com/kubeflow/trainer/v2@v2.2.0/examples/flux/lammps-train-job.yaml",
}

// TestUpstreamSamples: each copy is its origin with only Kaiwo's annotations added, and has a golden file.
func TestUpstreamSamples(t *testing.T) {
	cache := os.Getenv("GOMODCACHE")
	if cache == "" {
		cache = filepath.Join(build.Default.GOPATH, "pkg", "mod")
	}
	for copyPath, origin := range upstreamSamples {
		t.Run(filepath.Base(copyPath), func(t *testing.T) {
			if _, err := os.Stat(copyPath + ".golden"); err != nil {
				t.Errorf("no golden file: %v", err)
			}
			got := firstDoc(t, copyPath)
			md, _ := got["metadata"].(map[string]any)
			ann, _ := md["annotations"].(map[string]any)
			if len(ann) == 0 {
				t.Fatalf("%s asks Kaiwo for nothing", copyPath)
			}
			for k := range ann {
				if !bytes.HasPrefix([]byte(k), []byte("kaiwo.silogen.ai/")) {
					t.Errorf("annotation %s is not Kaiwo's", k)
				}
			}
			delete(md, "annotations")
			src := filepath.Join(cache, filepath.FromSlash(origin))
			if _, err := os.Stat(src); err != nil {
				t.Skipf("origin not in the module cache (%v): the copy's provenance is not rechecked here", err)
			}
			if diff := cmp.Diff(firstDoc(t, src), got); diff != "" {
				t.Errorf("%s differs from %s beyond Kaiwo's annotations (-origin,+copy):\n%s", copyPath, origin, diff)
			}
		})
	}
}

func firstDoc(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.Index(b, []byte("\n---\n")); i >= 0 {
		b = b[:i]
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}
