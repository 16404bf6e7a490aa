package v1alpha1

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestGeneratedFilesUpToDate runs hack/generate.sh into a temp dir and compares
// its output with the checked-in deepcopy code and CRD. It builds controller-gen
// on first use (about two minutes, then cached), so it is skipped under -short.
func TestGeneratedFilesUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs controller-gen; skipped under -short")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	// Read the generator's inputs here: go test caches a result by the files the
	// test itself opens, and the generator's reads happen in another process.
	inputs, err := filepath.Glob(filepath.Join(root, "api", "*", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append(inputs, filepath.Join(root, "hack", "generate.sh"), filepath.Join(root, "hack", "tools", "gen", "go.mod")) {
		if _, err := os.ReadFile(f); err != nil {
			t.Fatal(err)
		}
	}

	out := t.TempDir()
	cmd := exec.Command("bash", filepath.Join(root, "hack", "generate.sh"), out)
	if output, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/generate.sh: %v\n%s", err, output)
	}

	generated := func(dir string) map[string]string {
		files := map[string]string{}
		crds, err := filepath.Glob(filepath.Join(dir, "config", "crd", "kaiwo.silogen.ai_*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range append(crds, filepath.Join(dir, "api", "v1alpha1", "zz_generated.deepcopy.go")) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(dir, f)
			files[rel] = string(data)
		}
		return files
	}
	if diff := cmp.Diff(generated(root), generated(out)); diff != "" {
		t.Errorf("generated files are stale; run hack/generate.sh (-checked in,+generated):\n%s", diff)
	}
}

// TestCRDAsAPIServer runs the CRD checks of the tools module (hack/tools/gen):
// the API server's own CRD validation (structure, CEL compilation and cost) and
// schema plus CEL validation of sample objects. apiextensions-apiserver stays
// out of the main go.mod that way. Its first build takes minutes, so it is
// skipped under -short.
func TestCRDAsAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds apiextensions-apiserver in the tools module; skipped under -short")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	// Read the inputs here so that a change to them invalidates a cached result.
	for _, f := range []string{
		filepath.Join(root, "config", "crd", "kaiwo.silogen.ai_kaiwopolicies.yaml"),
		filepath.Join(root, "hack", "tools", "gen", "crd_test.go"),
	} {
		if _, err := os.ReadFile(f); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "-C", filepath.Join(root, "hack", "tools", "gen"), "test", "-count=1", "./...")
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	if output, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go test in hack/tools/gen: %v\n%s", err, output)
	}
}
