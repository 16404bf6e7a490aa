package bench

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
	"github.com/silogen/kaiwo-webhook/pkg/typedpatch"
)

// Layer A: the pure core on every payload, whole (Admit) and by stage.
func BenchmarkCore(b *testing.B) {
	pol := mustPolicy(b)
	for _, p := range mustPayloads(b) {
		for _, stage := range coreStages {
			b.Run(stage.name+"/"+p.Name, func(b *testing.B) {
				stage.bench(b, p, pol)
			})
		}
	}
}

// Layer B: the whole handler (decode the review, mutate, patch, encode) through httptest, against
// the no-op floor and the stock controller-runtime defaulter doing the same mutation.
func BenchmarkHandler(b *testing.B) {
	x, err := TeamIndex()
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range mustPayloads(b) {
		hs, err := handlers(x, p.Kind)
		if err != nil {
			b.Fatal(err)
		}
		for _, h := range hs {
			b.Run(h.name+"/"+p.Name, func(b *testing.B) { serve(b, h.h, Review(p)) })
		}
	}
}

type namedHandler struct {
	name string
	h    http.Handler
}

// handlers are the three Layer B compares, floor first.
func handlers(x *policy.Index, kind string) ([]namedHandler, error) {
	peer, err := Defaulter(IndexPolicies{x}, kind)
	if err != nil {
		return nil, err
	}
	return []namedHandler{{"noop", Noop()}, {"kaiwo", Mutator(IndexPolicies{x})}, {"defaulter", peer}}, nil
}

func serve(b *testing.B, h http.Handler, body []byte) {
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	r := bytes.NewReader(body)
	for b.Loop() {
		r.Reset(body)
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/mutate", r)
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("HTTP %d: %s", rec.Code, rec.Body)
		}
	}
}

var coreStages = []struct {
	name  string
	bench func(b *testing.B, p Payload, pol *policy.Policy)
}{
	{"admit", func(b *testing.B, p Payload, pol *policy.Policy) {
		policyFor := func(string) *policy.Policy { return pol }
		b.ReportAllocs()
		for b.Loop() {
			if _, err := kinds.Admit(p.Raw, policyFor, User); err != nil {
				b.Fatal(err)
			}
		}
	}},
	{"decode", func(b *testing.B, p Payload, _ *policy.Policy) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := kinds.Decode(p.Raw); err != nil {
				b.Fatal(err)
			}
		}
	}},
	{"mutate", func(b *testing.B, p Payload, pol *policy.Policy) {
		obj, kind, err := kinds.Decode(p.Raw)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := mutate.Mutate(mutate.Input{Kind: kind, Object: obj, Raw: p.Raw, Policy: pol, User: User}); err != nil {
				b.Fatal(err)
			}
		}
	}},
	{"patch", func(b *testing.B, p Payload, pol *policy.Policy) {
		obj, kind, err := kinds.Decode(p.Raw)
		if err != nil {
			b.Fatal(err)
		}
		out, err := mutate.Mutate(mutate.Input{Kind: kind, Object: obj, Raw: p.Raw, Policy: pol, User: User})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := typedpatch.Diff(p.Raw, obj, out.Object); err != nil {
				b.Fatal(err)
			}
		}
	}},
}

func mustPolicy(tb testing.TB) *policy.Policy {
	tb.Helper()
	pol, err := Policy()
	if err != nil {
		tb.Fatal(err)
	}
	return pol
}

func mustPayloads(tb testing.TB) []Payload {
	tb.Helper()
	ps, err := LoadAll()
	if err != nil {
		tb.Fatal(err)
	}
	return ps
}
