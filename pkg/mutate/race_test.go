package mutate_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/silogen/kaiwo-webhook/pkg/policy"
	"github.com/silogen/kaiwo-webhook/pkg/typedpatch"
)

// racePolicy writes every quantity in a non-canonical form, whose canonical string is computed on first
// use: a policy shared by concurrent requests must not compute it then (run with -race).
const racePolicy = `apiVersion: kaiwo.silogen.ai/v1alpha1
kind: KaiwoPolicy
metadata: {name: team-ml}
spec:
  namespaceSelector: {matchLabels: {kaiwo.silogen.ai/team: ml}}
  defaults: {cpuPerGpu: "4000m", memoryPerGpu: "32768Mi", shmSize: "65536Mi"}
`

// TestSharedPolicyConcurrentAdmit runs Admit concurrently with one compiled policy, as the server does
// with the policy the index shares across requests; under -race it fails if a request writes the policy.
func TestSharedPolicyConcurrentAdmit(t *testing.T) {
	pols, _, err := policy.Load(strings.NewReader(racePolicy))
	if err != nil {
		t.Fatal(err)
	}
	compiled := func() *policy.Policy {
		c, errs := policy.Compile(&pols[0], nil)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		return c.Policy()
	}
	cases := map[string]struct {
		policy  func() *policy.Policy
		wantCPU string
		wantShm string
	}{
		"compiled": {compiled, `"cpu":"8"`, `"sizeLimit":"64Gi"`},
		"builtin":  {policy.Default, `"cpu":"8"`, ``},
	}
	raw := []byte(`{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j","namespace":"team-ml","annotations":{"kaiwo.silogen.ai/gpus":"2"}},` +
		`"spec":{"template":{"spec":{"restartPolicy":"Never","containers":[{"name":"main","image":"busybox"}]}}}}`)
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			for range 5 { // a fresh policy each round: its canonical strings are not computed yet
				pol := tc.policy()
				var wg sync.WaitGroup
				patches := make([]string, 8)
				for i := range patches {
					wg.Go(func() {
						res, err := kinds.Admit(raw, func(string) *policy.Policy { return pol }, "alice")
						if err != nil {
							t.Error(err)
							return
						}
						b, err := typedpatch.Encode(res.Patch)
						if err != nil {
							t.Error(err)
						}
						patches[i] = string(b)
					})
				}
				wg.Wait()
				for _, p := range patches[1:] {
					if p != patches[0] {
						t.Fatalf("concurrent patches differ:\n%s\n%s", p, patches[0])
					}
				}
				if !strings.Contains(patches[0], tc.wantCPU) || !strings.Contains(patches[0], tc.wantShm) {
					t.Fatalf("patch %s does not hold %s and %s (canonical quantities)", patches[0], tc.wantCPU, tc.wantShm)
				}
			}
		})
	}
}
