package offline_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/silogen/kaiwo-webhook/pkg/offline"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

var update = flag.Bool("update", os.Getenv("REFRESH_GOLDEN") == "true", "rewrite golden files")

// goldenCase is one input rendered under one policy.
type goldenCase struct {
	input string
	// policy is a KaiwoPolicy file that selects namespaces labelled kaiwo.silogen.ai/team: ml; "" is the
	// built-in default.
	policy string
}

// goldenInputs are the examples users read plus the cases under testdata/golden, under the built-in policy;
// and, for each directory testdata/golden/NAME with a policy.yaml, the examples plus that directory's
// cases under that policy, with golden files in the directory.
func goldenInputs(t *testing.T) map[string]goldenCase {
	t.Helper()
	inputs := map[string]goldenCase{}
	glob := func(dir, policy string, patterns ...string) {
		for _, pattern := range patterns {
			files, err := filepath.Glob(pattern)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				if filepath.Base(f) != "policy.yaml" {
					inputs[filepath.Join(dir, filepath.Base(f)+".golden")] = goldenCase{f, policy}
				}
			}
		}
	}
	glob("testdata/golden", "", "../../examples/*.yaml", "testdata/golden/*.yaml")
	policies, _ := filepath.Glob("testdata/golden/*/policy.yaml")
	for _, p := range policies {
		dir := filepath.Dir(p)
		glob(dir, p, "../../examples/*.yaml", filepath.Join(dir, "*.yaml"))
	}
	return inputs
}

// policyFor resolves a policy file for a namespace labelled kaiwo.silogen.ai/team: ml.
func policyFor(t *testing.T, file string) func(string) *policy.Policy {
	t.Helper()
	if file == "" {
		return nil
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pol, err := policy.LoadResolved(f, map[string]string{"kaiwo.silogen.ai/team": "ml"})
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return func(string) *policy.Policy { return pol }
}

// render mutates in; a denial is written as a "# denied:" line after the documents before it.
func render(t *testing.T, in []byte, polFor func(string) *policy.Policy) ([]byte, int, bool) {
	t.Helper()
	docs, runErr := offline.Run(bytes.NewReader(in), offline.Options{User: "alice@example.com", PolicyFor: polFor})
	var out bytes.Buffer
	warnings := 0
	for _, d := range docs {
		for _, w := range d.Warnings {
			out.WriteString("# warning: " + d.Kind + " " + d.Name + ": " + w + "\n")
			warnings++
		}
	}
	if err := offline.Write(&out, docs); err != nil {
		t.Fatal(err)
	}
	if runErr != nil {
		out.WriteString("# denied: " + runErr.Error() + "\n")
	}
	return out.Bytes(), warnings, runErr != nil
}

// stripWarnings drops the warning comments so the output can be mutated again.
func stripWarnings(b []byte) []byte {
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "# warning: ") {
			keep = append(keep, l)
		}
	}
	return []byte(strings.Join(keep, "\n"))
}

// TestGolden: manifest in, mutated manifest out, per kind; and a second pass changes nothing.
// Run with -update (or REFRESH_GOLDEN=true) to rewrite the golden files.
func TestGolden(t *testing.T) {
	inputs := goldenInputs(t)
	for golden, tc := range inputs {
		t.Run(strings.TrimPrefix(golden, "testdata/golden/"), func(t *testing.T) {
			in, err := os.ReadFile(tc.input)
			if err != nil {
				t.Fatal(err)
			}
			polFor := policyFor(t, tc.policy)
			got, _, denied := render(t, in, polFor)
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("no golden file (run go test ./pkg/offline -update): %v", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s differs (-want,+got):\n%s", golden, diff)
			}
			if denied {
				return
			}
			again, warnings, denied := render(t, stripWarnings(got), polFor)
			if diff := cmp.Diff(string(stripWarnings(got)), string(again)); diff != "" || warnings > 0 || denied {
				t.Errorf("second pass is not a no-op (%d warnings) (-first,+second):\n%s", warnings, diff)
			}
		})
	}
	// Stale detection: every golden file has an input.
	files, _ := filepath.Glob("testdata/golden/*.golden")
	more, _ := filepath.Glob("testdata/golden/*/*.golden")
	files = append(files, more...)
	for _, f := range files {
		if _, ok := inputs[f]; !ok {
			t.Errorf("stale golden file %s has no input; delete it", f)
		}
	}
}
