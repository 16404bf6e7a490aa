package mutate_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/silogen/kaiwo-webhook/internal/shapes"
	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

func admitDefault(raw []byte) (*mutate.Result, error) {
	return kinds.Admit(raw, func(string) *policy.Policy { return policy.Default() }, "alice")
}

// wantDenial checks that err is a denial of reason whose message holds every part of want.
func wantDenial(t *testing.T, err error, reason string, want ...string) {
	t.Helper()
	var d *mutate.Denial
	if !errors.As(err, &d) {
		t.Fatalf("want a denial (%s), got %v", reason, err)
	}
	if d.Reason != reason {
		t.Errorf("reason = %q, want %q (%v)", d.Reason, reason, d)
	}
	for _, w := range want {
		if !strings.Contains(d.Error(), w) {
			t.Errorf("denial %q does not say %q", d.Error(), w)
		}
	}
}

// wantBoundedPatch checks that a mutated result's patch is within the limits.
func wantBoundedPatch(t *testing.T, res *mutate.Result, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("want a mutation, got %v", err)
	}
	if len(res.Patch) == 0 || len(res.Patch) > mutate.MaxPatchOperations || len(res.PatchJSON) > mutate.MaxPatchBytes {
		t.Errorf("patch of %d operations, %d bytes; want 1 to %d operations, at most %d bytes", len(res.Patch), len(res.PatchJSON), mutate.MaxPatchOperations, mutate.MaxPatchBytes)
	}
}

// TestWorstShapes: every worst shape is denied with the limit it is past, or mutated with a patch within
// the limits.
func TestWorstShapes(t *testing.T) {
	want := map[string]struct {
		reason string // "" for a bounded mutation
		says   []string
	}{
		"containers-1000-env-1000":        {mutate.ReasonLimit, []string{"metadata.annotations[kaiwo.silogen.ai/env]", "1000 entries x 1000 containers", "at most 10000 env entries"}},
		"containers-8000-env-0":           {mutate.ReasonLimit, []string{"spec", "at least 16000 patch operations", "at most 10000 operations"}},
		"containers-1-env-2000":           {mutate.ReasonAnnotation, []string{"metadata.annotations[kaiwo.silogen.ai/env].envVars", "2000", "at most 1024 items"}},
		"containers-1-env-1":              {},
		"rayjob-300x10-env-20":            {mutate.ReasonLimit, []string{"kaiwo.silogen.ai/env", "20 entries x 3001 containers", "at most 10000"}},
		"rayjob-1000x1-env-0":             {},
		"unknown-keys-1000":               {mutate.ReasonAnnotation, []string{"kaiwo.silogen.ai/gpu0", `did you mean "kaiwo.silogen.ai/gpus"`, "1000 unknown Kaiwo annotations", "981 more are not"}},
		"unknown-keys-20000":              {mutate.ReasonAnnotation, []string{"20000 unknown Kaiwo annotations", "19981 more are not"}},
		"deep-9000":                       {},
		"largest-3mib":                    {mutate.ReasonLimit, []string{"object", "bytes of JSON", "at most 1572864 bytes"}},
		"largest-stored-10000-containers": {mutate.ReasonLimit, []string{"at least 20000 patch operations", "at most 10000 operations"}},
		"largest-stored-1000-containers":  {},
	}
	for _, s := range shapes.Worst() {
		t.Run(s.Name, func(t *testing.T) {
			w, ok := want[s.Name]
			if !ok {
				t.Fatalf("no expectation for shape %s", s.Name)
			}
			res, err := admitDefault(s.Raw)
			if w.reason == "" {
				wantBoundedPatch(t, res, err)
				return
			}
			wantDenial(t, err, w.reason, w.says...)
			if d := (*mutate.Denial)(nil); errors.As(err, &d) && len(d.Error()) > 8<<10 {
				t.Errorf("denial message of %d bytes; want it short", len(d.Error()))
			}
		})
	}
}

func rawJob(annots map[string]string, podSpec map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"apiVersion": "batch/v1", "kind": "Job",
		"metadata": map[string]any{"name": "j", "namespace": "ml", "annotations": annots},
		"spec":     map[string]any{"template": map[string]any{"spec": podSpec}}})
	return b
}

func named(prefix string, n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = map[string]any{"name": fmt.Sprintf("%s%d", prefix, i), "image": "busybox"}
	}
	return out
}

// TestLimitsCannotBeWalkedAround: the limits count what Kaiwo does over the whole object, however it is
// spread: init containers with app containers, containers over Ray groups, one long value instead of
// many entries, padding outside the Kaiwo annotations.
func TestLimitsCannotBeWalkedAround(t *testing.T) {
	cases := map[string]struct {
		raw    []byte
		reason string
		says   []string
	}{
		"containers split between init and app": {
			raw:    rawJob(map[string]string{"kaiwo.silogen.ai/gpus": "1"}, map[string]any{"containers": named("c", 6000), "initContainers": named("i", 4001)}),
			reason: mutate.ReasonLimit, says: []string{"spec", "10001 containers", "at most 10000 containers (app and init) over all pod templates"}},
		"env entries spread over Ray groups": {
			raw:    shapes.RayJob(100, 2, 60).Raw, // 60 entries x 201 containers
			reason: mutate.ReasonLimit, says: []string{"kaiwo.silogen.ai/env", "60 entries x 201 containers", "at most 10000 env entries"}},
		"one long env value copied into containers": {
			raw:    shapes.Containers(40, 1, 60000).Raw, // 60 KB x 40 containers
			reason: mutate.ReasonLimit, says: []string{"kaiwo.silogen.ai/env", "x 40 containers", fmt.Sprintf("at most %d bytes of env names and values", mutate.MaxInjectedEnvBytes)}},
		"env entries past the count": {
			raw:    rawJob(map[string]string{"kaiwo.silogen.ai/env": shapes.EnvAnnotation(1025, 0)}, map[string]any{"containers": named("c", 1)}),
			reason: mutate.ReasonAnnotation, says: []string{"metadata.annotations[kaiwo.silogen.ai/env].envVars", "1025", "at most 1024 items"}},
		"padding in another annotation": {
			raw:    rawJob(map[string]string{"kaiwo.silogen.ai/gpus": "1", "notes": strings.Repeat("x", mutate.MaxObjectBytes)}, map[string]any{"containers": named("c", 1)}),
			reason: mutate.ReasonLimit, says: []string{"object", fmt.Sprintf("at most %d bytes of JSON", mutate.MaxObjectBytes)}},
		"yaml aliases that expand a billion-fold": {
			raw:    rawJob(map[string]string{"kaiwo.silogen.ai/env": billionLaughs()}, map[string]any{"containers": named("c", 1)}),
			reason: mutate.ReasonAnnotation, says: []string{"metadata.annotations[kaiwo.silogen.ai/env]", "must be the Kaiwo env-file YAML"}},
		"patch operations from containers alone": {
			raw:    rawJob(map[string]string{"kaiwo.silogen.ai/gpus": "1"}, map[string]any{"containers": named("c", 5001)}),
			reason: mutate.ReasonLimit, says: []string{"at least 10002 patch operations", "at most 10000 operations"}},
		"patch operations just past the limit, under the bound read before the patch": {
			raw:    rawJob(map[string]string{"kaiwo.silogen.ai/gpus": "1"}, map[string]any{"containers": named("c", 4999)}), // 2 x 4999 adds and 6 more
			reason: mutate.ReasonLimit, says: []string{"spec", "10004 patch operations", "at most 10000 operations"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := admitDefault(tc.raw)
			wantDenial(t, err, tc.reason, tc.says...)
		})
	}
	t.Run("just within the limits", func(t *testing.T) {
		res, err := admitDefault(shapes.RayJob(100, 2, 49).Raw) // 49 entries x 201 containers = 9849
		wantBoundedPatch(t, res, err)
	})
}

// TestUnknownKeysReported: many unknown keys give a bounded list, the first few with a suggestion, and
// a count of the rest.
func TestUnknownKeysReported(t *testing.T) {
	_, errs := annotations.ParseOptions(shapesAnnotations(shapes.UnknownKeys(300)))
	if len(errs) != mutate.MaxReportedErrors {
		t.Fatalf("got %d errors, want %d listed and a count", len(errs), mutate.MaxReportedErrors-1)
	}
	suggested := 0
	for _, e := range errs {
		if strings.Contains(e.Error(), "did you mean") {
			suggested++
		}
	}
	if suggested != 5 {
		t.Errorf("%d keys got a suggestion, want 5", suggested)
	}
	if !strings.Contains(errs[0].Error(), "supported: kaiwo.silogen.ai/gpus") || strings.Contains(errs[1].Error(), "supported:") {
		t.Errorf("want the supported keys listed once, in the first error: %q, %q", errs[0], errs[1])
	}
	if last := errs[len(errs)-1].Error(); !strings.Contains(last, "300 unknown Kaiwo annotations") || !strings.Contains(last, "281 more are not") {
		t.Errorf("last error %q does not count the rest", last)
	}
}

func shapesAnnotations(s shapes.Shape) map[string]string {
	var obj struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(s.Raw, &obj)
	return obj.Metadata.Annotations
}

// TestDenialListsBoundedErrors: a denial with many errors lists the first MaxReportedErrors and counts the rest.
func TestDenialListsBoundedErrors(t *testing.T) {
	var errs field.ErrorList
	for i := range 100 {
		errs = append(errs, field.Invalid(field.NewPath("spec").Index(i), i, "must be fine"))
	}
	msg := (&mutate.Denial{Reason: mutate.ReasonShape, Errs: errs}).Error()
	if !strings.Contains(msg, "spec[19]") || strings.Contains(msg, "spec[20]") || !strings.HasSuffix(msg, "and 80 more errors") {
		t.Errorf("denial = %q; want spec[0] to spec[19] and a count of 80 more", msg)
	}
}

// TestCostGrowsLinearly: allocations of Admit on a Job grow in proportion to its containers and env
// entries, and not with the unknown keys past the reported ones (allocation counts are deterministic).
func TestCostGrowsLinearly(t *testing.T) {
	if testing.Short() {
		t.Skip("builds large objects")
	}
	allocs := func(s shapes.Shape) float64 {
		return testing.AllocsPerRun(3, func() { _, _ = admitDefault(s.Raw) })
	}
	cases := map[string]struct {
		small, large shapes.Shape
		factor       float64 // large is factor times small
	}{
		"containers":   {shapes.Containers(500, 0, 0), shapes.Containers(4000, 0, 0), 8},
		"env x groups": {shapes.RayJob(50, 2, 40), shapes.RayJob(120, 2, 40), 2.4},
		"unknown keys": {shapes.UnknownKeys(1000), shapes.UnknownKeys(8000), 8},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			a, b := allocs(tc.small), allocs(tc.large)
			if b > 1.25*tc.factor*a {
				t.Errorf("allocations %.0f -> %.0f: %.2fx for %.1fx the size; want at most %.2fx (linear)", a, b, b/a, tc.factor, 1.25*tc.factor)
			}
		})
	}
}

// billionLaughs is a YAML document of a few hundred bytes whose aliases expand to 9^9 strings.
func billionLaughs() string {
	var b strings.Builder
	b.WriteString("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n")
	for c := 'b'; c <= 'i'; c++ {
		ref := "*" + string(c-1)
		fmt.Fprintf(&b, "%c: &%c [%s]\n", c, c, strings.TrimSuffix(strings.Repeat(ref+",", 9), ","))
	}
	b.WriteString("envVars: *i\n")
	return b.String()
}
