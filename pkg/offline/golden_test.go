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
)

var update = flag.Bool("update", os.Getenv("REFRESH_GOLDEN") == "true", "rewrite golden files")

// goldenInputs are the examples users read plus the cases under testdata/golden.
func goldenInputs(t *testing.T) map[string]string {
	t.Helper()
	inputs := map[string]string{}
	for _, pattern := range []string{"../../examples/*.yaml", "testdata/golden/*.yaml"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			inputs[filepath.Join("testdata/golden", filepath.Base(f)+".golden")] = f
		}
	}
	return inputs
}

func render(t *testing.T, in []byte) ([]byte, int) {
	t.Helper()
	docs, err := offline.Run(bytes.NewReader(in), offline.Options{User: "alice@example.com"})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
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
	return out.Bytes(), warnings
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
	for golden, input := range inputs {
		t.Run(filepath.Base(input), func(t *testing.T) {
			in, err := os.ReadFile(input)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := render(t, in)
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
			again, warnings := render(t, stripWarnings(got))
			if diff := cmp.Diff(string(stripWarnings(got)), string(again)); diff != "" || warnings > 0 {
				t.Errorf("second pass is not a no-op (%d warnings) (-first,+second):\n%s", warnings, diff)
			}
		})
	}
	// Stale detection: every golden file has an input.
	files, _ := filepath.Glob("testdata/golden/*.golden")
	for _, f := range files {
		if _, ok := inputs[f]; !ok {
			t.Errorf("stale golden file %s has no input; delete it", f)
		}
	}
}
