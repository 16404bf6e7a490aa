package policy

import (
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/silogen/kaiwo-webhook/api/v1alpha1"
)

func values(ps ...*v1alpha1.KaiwoPolicy) []v1alpha1.KaiwoPolicy {
	out := make([]v1alpha1.KaiwoPolicy, len(ps))
	for i, p := range ps {
		out[i] = *p
	}
	return out
}

// TestIndexUpdates walks an Index through a sequence of changes and checks the
// queue each namespace resolves to after each step.
func TestIndexUpdates(t *testing.T) {
	type step struct {
		do   func(x *Index)
		want map[string]string // namespace -> Defaults.Queue
	}
	cases := map[string]struct{ steps []step }{
		"namespaces and policies in either order": {steps: []step{
			{do: func(x *Index) {}, want: map[string]string{"ml-a": "kaiwo", "unknown": "kaiwo"}},
			{do: func(x *Index) { x.SetNamespace("ml-a", map[string]string{teamLabel: "ml"}) }, want: map[string]string{"ml-a": "kaiwo"}},
			{
				do:   func(x *Index) { x.SetPolicies(values(makePolicy("ml").Queue("team-ml").Obj())) },
				want: map[string]string{"ml-a": "team-ml", "unknown": "kaiwo"},
			},
			{
				do:   func(x *Index) { x.SetNamespace("ml-b", map[string]string{teamLabel: "ml"}) },
				want: map[string]string{"ml-a": "team-ml", "ml-b": "team-ml"},
			},
		}},
		"a namespace relabelled to another team": {steps: []step{
			{do: func(x *Index) {
				x.SetPolicies(values(makePolicy("ml").Queue("team-ml").Obj(), makePolicy("vision").Queue("team-vision").Obj()))
				x.SetNamespace("ns", map[string]string{teamLabel: "ml"})
			}, want: map[string]string{"ns": "team-ml"}},
			{do: func(x *Index) { x.SetNamespace("ns", map[string]string{teamLabel: "vision"}) }, want: map[string]string{"ns": "team-vision"}},
			{do: func(x *Index) { x.SetNamespace("ns", nil) }, want: map[string]string{"ns": "kaiwo"}},
		}},
		"a deleted namespace resolves as unknown": {steps: []step{
			{do: func(x *Index) {
				x.SetPolicies(values(
					makePolicy("ml").Priority(1).Queue("team-ml").Obj(),
					makePolicy("all").Selector(&metav1.LabelSelector{}).Queue("shared").Obj(),
				))
				x.SetNamespace("ml-a", map[string]string{teamLabel: "ml"})
			}, want: map[string]string{"ml-a": "team-ml", "unknown": "shared"}},
			{do: func(x *Index) { x.DeleteNamespace("ml-a") }, want: map[string]string{"ml-a": "shared"}},
		}},
		"a policy change recomputes every namespace": {steps: []step{
			{do: func(x *Index) {
				x.SetPolicies(values(makePolicy("ml").Queue("q1").Obj()))
				x.SetNamespace("ml-a", map[string]string{teamLabel: "ml"})
				x.SetNamespace("ml-b", map[string]string{teamLabel: "ml"})
			}, want: map[string]string{"ml-a": "q1", "ml-b": "q1"}},
			{do: func(x *Index) { x.SetPolicies(values(makePolicy("ml").Queue("q2").Obj())) }, want: map[string]string{"ml-a": "q2", "ml-b": "q2"}},
			{do: func(x *Index) { x.SetPolicies(nil) }, want: map[string]string{"ml-a": "kaiwo", "ml-b": "kaiwo"}},
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var x Index // the zero value is ready to use
			for i, s := range tc.steps {
				s.do(&x)
				got := map[string]string{}
				for ns := range s.want {
					got[ns] = x.For(ns).Defaults.Queue
				}
				if diff := cmp.Diff(s.want, got); diff != "" {
					t.Errorf("step %d: queues mismatch (-want,+got):\n%s", i, diff)
				}
			}
		})
	}
}

func TestIndexFlavors(t *testing.T) {
	x := NewIndex()
	x.SetPolicies(values(makePolicy("ml").GPUsPerNodeFrom("mi300x", "gpus").Obj()))
	x.SetNamespace("ml-a", map[string]string{teamLabel: "ml"})
	check := func(step string, wantGPUs int32) {
		t.Helper()
		if got := x.For("ml-a").Defaults.GPUsPerNode; got != wantGPUs {
			t.Errorf("%s: GPUsPerNode = %d, want %d", step, got, wantGPUs)
		}
	}
	check("no flavor yet", 8)
	x.SetFlavors(Flavors{"mi300x": {"gpus": "4"}})
	check("flavor created", 4)
	x.SetFlavors(Flavors{"mi300x": {"gpus": "2"}})
	check("flavor changed", 2)
	x.SetFlavors(nil)
	check("flavor deleted", 8)
}

// TestIndexMatchesResolve checks the selector index and the memo against the
// plain Resolve, over selectors of every kind.
func TestIndexMatchesResolve(t *testing.T) {
	req := func(key string, op metav1.LabelSelectorOperator, vals ...string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: op, Values: vals}}}
	}
	policies := []*v1alpha1.KaiwoPolicy{
		makePolicy("ml").Priority(9).Queue("ml").Obj(),
		makePolicy("in").Priority(8).Selector(req(teamLabel, metav1.LabelSelectorOpIn, "ml", "vision")).ShmSize("1Gi").Obj(),
		makePolicy("notin").Priority(7).Selector(req(teamLabel, metav1.LabelSelectorOpNotIn, "ml")).TTL(7).Obj(),
		makePolicy("exists").Priority(6).Selector(req("env", metav1.LabelSelectorOpExists)).PriorityClass("exists").Obj(),
		makePolicy("absent").Priority(5).Selector(req("env", metav1.LabelSelectorOpDoesNotExist)).ImagePullSecret("absent").Obj(),
		makePolicy("two").Priority(4).Selector(&metav1.LabelSelector{MatchLabels: map[string]string{teamLabel: "ml", "env": "prod"}}).Vendor("nvidia").Obj(),
		makePolicy("all").Priority(0).Selector(&metav1.LabelSelector{}).Enforce().Obj(),
		makePolicy("broken").Priority(3).Selector(req(teamLabel, "Near")).Obj(),
		makePolicy("invalid").Priority(2).Selector(req("env", metav1.LabelSelectorOpIn, "dev")).CPUPerGPU("0").Obj(),
	}
	namespaces := map[string]map[string]string{
		"none":       nil,
		"ml":         {teamLabel: "ml"},
		"ml-prod":    {teamLabel: "ml", "env": "prod"},
		"vision-dev": {teamLabel: "vision", "env": "dev"},
		"other":      {teamLabel: "other", "x": "y"},
	}
	x := NewIndex()
	for ns, ls := range namespaces {
		x.SetNamespace(ns, ls)
	}
	x.SetPolicies(values(policies...))
	cs := compiled(policies...)
	for ns, ls := range namespaces {
		if diff := cmp.Diff(Resolve(ls, cs), x.For(ns), policyCmp); diff != "" {
			t.Errorf("For(%q) differs from Resolve (-want,+got):\n%s", ns, diff)
		}
	}
	if diff := cmp.Diff(Resolve(nil, cs), x.For("unknown"), policyCmp); diff != "" {
		t.Errorf("For(unknown) differs from Resolve of no labels (-want,+got):\n%s", diff)
	}
	if err := x.For("vision-dev").Err; err == nil {
		t.Errorf("For(vision-dev).Err = nil, want the invalid policy's error")
	}
}

func TestIndexConflicts(t *testing.T) {
	x := NewIndex()
	x.SetPolicies(values(makePolicy("ml").Obj()))
	x.SetNamespace("ml-a", map[string]string{teamLabel: "ml", "env": "prod"})
	prod := makePolicy("prod").Selector(&metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}})
	if errs := x.Conflicts(prod.Obj()); len(errs) != 1 {
		t.Errorf("Conflicts(prod, priority 0) = %v, want one conflict with ml", errs)
	}
	if errs := x.Conflicts(prod.Priority(1).Obj()); len(errs) != 0 {
		t.Errorf("Conflicts(prod, priority 1) = %v, want none", errs)
	}
}

// TestIndexConcurrent runs lookups against updates; run with -race.
func TestIndexConcurrent(t *testing.T) {
	x := NewIndex()
	x.SetPolicies(values(makePolicy("ml").Queue("q").Obj()))
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				if p := x.For(fmt.Sprintf("ns-%d", (i+r)%50)); p == nil {
					t.Error("For() = nil")
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 500 {
			x.SetNamespace(fmt.Sprintf("ns-%d", i%50), map[string]string{teamLabel: "ml"})
			if i%100 == 0 {
				x.SetPolicies(values(makePolicy("ml").Queue(fmt.Sprintf("q%d", i)).Obj()))
			}
			if i%7 == 0 {
				x.DeleteNamespace(fmt.Sprintf("ns-%d", i%50))
			}
		}
	})
	wg.Wait()
}

// benchIndex builds an Index of nPolicies policies, each selecting one team,
// and nNamespaces namespaces spread over the teams.
func benchIndex(tb testing.TB, nPolicies, nNamespaces int) (*Index, []string) {
	tb.Helper()
	policies := make([]v1alpha1.KaiwoPolicy, nPolicies)
	for i := range policies {
		policies[i] = *makePolicy(fmt.Sprintf("team-%d", i)).Priority(int32(i%7)).Queue(fmt.Sprintf("q-%d", i)).
			MaxGPUs(64).AllowedQueues(fmt.Sprintf("q-%d", i), "shared").Locked("queue").Obj()
	}
	x := NewIndex()
	x.SetPolicies(policies)
	names := make([]string, nNamespaces)
	for i := range names {
		names[i] = fmt.Sprintf("ns-%d", i)
		x.SetNamespace(names[i], map[string]string{
			teamLabel:                     fmt.Sprintf("team-%d", i%nPolicies),
			"kubernetes.io/metadata.name": names[i],
		})
	}
	if got, want := x.For(names[len(names)-1]).Name, fmt.Sprintf("team-%d", (nNamespaces-1)%nPolicies); got != want {
		tb.Fatalf("For(%s).Name = %q, want %q", names[len(names)-1], got, want)
	}
	return x, names
}

func BenchmarkIndexFor(b *testing.B) {
	for _, n := range []int{1, 1000, 10000} {
		b.Run(fmt.Sprintf("namespaces=%d", n), func(b *testing.B) {
			x, names := benchIndex(b, 1000, n)
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				if x.For(names[i]) == nil {
					b.Fatal("For() = nil")
				}
				if i++; i == len(names) {
					i = 0
				}
			}
		})
	}
}

// BenchmarkIndexSetPolicies measures recomputing 10,000 namespaces after a
// policy change.
func BenchmarkIndexSetPolicies(b *testing.B) {
	x, _ := benchIndex(b, 1000, 10000)
	policies := make([]v1alpha1.KaiwoPolicy, 0, len(x.policies))
	for _, p := range x.policies {
		policies = append(policies, *p)
	}
	for b.Loop() {
		x.SetPolicies(policies)
	}
}

// TestIndexHeap reports the heap an Index of 1,000 policies and 10,000
// namespaces holds, and fails past a generous bound.
func TestIndexHeap(t *testing.T) {
	const bound = 64 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	x, _ := benchIndex(t, 1000, 10000)
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	runtime.KeepAlive(x)
	t.Logf("heap held by an Index of 1000 policies and 10000 namespaces: %.1f MiB", float64(held)/(1<<20))
	if held > bound {
		t.Errorf("Index holds %d bytes, want at most %d", held, bound)
	}
}
