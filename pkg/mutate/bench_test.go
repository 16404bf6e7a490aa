package mutate_test

import (
	"path/filepath"
	"testing"

	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// benchKinds name the payloads in testdata/bench: each asks for GPUs, has an env annotation with a value,
// a Secret value and a mountSecret, a code ConfigMap and a /dev/shm size.
var benchKinds = []string{"job", "rayjob", "rayservice", "deployment"}

func benchPayload(b *testing.B, kind string) []byte {
	b.Helper()
	return rwReadJSON(b, filepath.Join("testdata", "bench", kind+".yaml"))
}

// BenchmarkMutate measures the pure core on a decoded object: parse the annotations, resolve the policy,
// plan, and mutate a copy.
func BenchmarkMutate(b *testing.B) {
	pol := policy.Default()
	for _, kind := range benchKinds {
		raw := benchPayload(b, kind)
		obj, _, err := kinds.Decode(raw)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(kind, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				out, err := mutateIn(mutate.Input{Object: obj, Raw: raw, Policy: pol, User: rwUser})
				if err != nil || !out.Managed {
					b.Fatalf("Mutate: managed=%v, %v", out != nil && out.Managed, err)
				}
			}
		})
	}
}

// BenchmarkAdmit measures what one admission request costs: decode the raw JSON, mutate, build the patch.
func BenchmarkAdmit(b *testing.B) {
	pol := policy.Default()
	polFor := func(string) *policy.Policy { return pol }
	for _, kind := range benchKinds {
		raw := benchPayload(b, kind)
		b.Run(kind, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				res, err := kinds.Admit(raw, polFor, rwUser)
				if err != nil || len(res.Patch) == 0 {
					b.Fatalf("Admit: %v", err)
				}
			}
		})
	}
}
