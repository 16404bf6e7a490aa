package annotations_test

import (
	"os"
	"strings"
	"testing"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
)

// TestREADMETable keeps the README's key table equal to the one list of keys.
func TestREADMETable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- keys:begin -->\n", "<!-- keys:end -->"
	s := string(readme)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the %q ... %q block", begin, end)
	}
	if got, want := s[i+len(begin):j], annotations.Table(); got != want {
		t.Errorf("README.md key table is out of date; replace the block with:\n%s", want)
	}
}

func TestKeysAreUniqueAndPrefixed(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range annotations.All {
		if seen[k.Name] {
			t.Errorf("duplicate key %s", k.Name)
		}
		seen[k.Name] = true
		if !annotations.IsKaiwo(k.Name) || k.Doc == "" || k.Value == "" {
			t.Errorf("key %+v: needs the Kaiwo prefix, a value and a doc", k)
		}
	}
	if !annotations.Known(annotations.Applied) || annotations.Known(annotations.Managed) || annotations.Known("kaiwo.silogen.ai/gpu") {
		t.Error("Known: annotations only, labels and typos are not")
	}
}
