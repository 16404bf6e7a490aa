package mutate_test

import (
	"encoding/json"
	"testing"

	"github.com/silogen/kaiwo-webhook/internal/shapes"
	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// appliedOf mutates raw under the default policy and reads the applied record of the result.
func appliedOf(t *testing.T, raw []byte) mutate.Applied {
	t.Helper()
	obj, _, err := kinds.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	out, err := mutateIn(mutate.Input{Object: obj, Raw: raw, Policy: policy.Default(), User: "alice", Create: true})
	if err != nil {
		t.Fatal(err)
	}
	var a mutate.Applied
	if err := json.Unmarshal([]byte(out.Object.GetAnnotations()[annotations.Applied]), &a); err != nil {
		t.Fatalf("applied record: %v", err)
	}
	return a
}

// The record names what Kaiwo placed in every container while it is small; past its bound it is left
// out whole (never cut short, which an UPDATE would read as the rest being the user's), however many
// containers there are.
func TestPlacedRecordBounded(t *testing.T) {
	small := appliedOf(t, shapes.Containers(5, 0, 0).Raw)
	if small.Placed == nil || len(small.Placed.Templates["spec.template"].Containers) != 5 {
		t.Fatalf("5 containers: placed record %+v, want each of the 5 containers", small.Placed)
	}
	for _, n := range []int{500, 4000} {
		a := appliedOf(t, shapes.Containers(n, 0, 0).Raw)
		if a.Placed != nil {
			t.Errorf("%d containers: placed record of %d templates kept, want it left out (over the bound)", n, len(a.Placed.Templates))
		}
		if a.Policy == "" || len(a.Features) == 0 {
			t.Errorf("%d containers: the rest of the record is lost: %+v", n, a)
		}
	}
}
