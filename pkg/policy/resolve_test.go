package policy

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/utils/ptr"

	"github.com/silogen/kaiwo-webhook/api/v1alpha1"
)

func TestResolve(t *testing.T) {
	gpuToleration := corev1.Toleration{Key: "amd.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}
	all := &metav1.LabelSelector{}

	cases := map[string]struct {
		labels   map[string]string
		policies []*v1alpha1.KaiwoPolicy
		want     *Policy
	}{
		"no policy: built-in defaults, OptIn": {
			labels: map[string]string{teamLabel: "ml"},
			want:   Default(),
		},
		"a policy that selects other namespaces: built-in defaults": {
			labels:   map[string]string{teamLabel: "ml"},
			policies: []*v1alpha1.KaiwoPolicy{makePolicy("vision").Queue("vision").Obj()},
			want:     Default(),
		},
		"one policy: its fields, built-in defaults for the rest": {
			labels: map[string]string{teamLabel: "ml"},
			policies: []*v1alpha1.KaiwoPolicy{makePolicy("ml").Generation(3).Queue("team-ml").Vendor("nvidia").
				Tolerations(gpuToleration).MaxGPUs(16).AllowedVendors("nvidia").Locked("queue").LocalQueue(true, "").Obj()},
			want: withDefaults(func(p *Policy) {
				p.Name, p.Generation = "ml", 3
				p.Sources = []Source{{Name: "ml", Generation: 3}}
				p.Defaults.Queue = "team-ml"
				p.Defaults.GPUVendor = "nvidia"
				p.Defaults.Tolerations = []corev1.Toleration{gpuToleration}
				p.Limits = Limits{MaxGPUsPerWorkload: 16, AllowedVendors: []string{"nvidia"}}
				p.Locked = []string{"queue"}
				p.LocalQueue = &LocalQueue{Name: "team-ml", ClusterQueue: "kaiwo"}
			}),
		},
		"two policies merge field by field, the higher priority wins": {
			labels: map[string]string{teamLabel: "ml"},
			policies: []*v1alpha1.KaiwoPolicy{
				makePolicy("cluster").Selector(all).Priority(0).Queue("shared").ShmSize("8Gi").TTL(600).
					MaxGPUs(64).AllowedVendors("amd", "nvidia").AllowedQueues("shared", "team-ml").AllowedSecrets("hf-*").
					Locked("shmSize").Patch(`{"metadata":{"labels":{"cluster":"x"}}}`).LocalQueue(true, "cq").Obj(),
				makePolicy("ml").Priority(10).Queue("team-ml").CPUPerGPU("8").
					MaxGPUs(32).AllowedVendors("amd").AllowedQueues("team-ml", "team-ml-low").AllowedSecrets("team-ml-*").
					Locked("queue").Patch(`{"metadata":{"labels":{"team":"ml"}}}`).Obj(),
			},
			want: withDefaults(func(p *Policy) {
				p.Name, p.Generation = "ml", 1
				p.Sources = []Source{{Name: "ml", Generation: 1}, {Name: "cluster", Generation: 1}}
				p.Defaults.Queue = "team-ml"
				p.Defaults.CPUPerGPU = resource.MustParse("8")
				p.Defaults.ShmSize = ptr.To(resource.MustParse("8Gi"))
				p.Defaults.TTLSecondsAfterFinished = ptr.To[int32](600)
				p.Limits = Limits{
					MaxGPUsPerWorkload: 32,
					AllowedVendors:     []string{"amd"},
					AllowedQueues:      []string{"team-ml"},
					AllowedSecrets:     [][]string{{"team-ml-*"}, {"hf-*"}},
				}
				p.Locked = []string{"queue", "shmSize"}
				p.PodTemplatePatch = []byte(`{"metadata":{"labels":{"cluster":"x","team":"ml"}}}`)
				p.LocalQueue = &LocalQueue{Name: "team-ml", ClusterQueue: "cq"}
			}),
		},
		"disjoint allow lists: nothing allowed, and the default is flagged": {
			labels: map[string]string{teamLabel: "ml"},
			policies: []*v1alpha1.KaiwoPolicy{
				makePolicy("a").Selector(all).Priority(1).AllowedQueues("q1").Obj(),
				makePolicy("b").Selector(all).Priority(2).AllowedQueues("q2").Obj(),
			},
			want: withDefaults(func(p *Policy) {
				p.Name, p.Generation = "b", 1
				p.Sources = []Source{{Name: "b", Generation: 1}, {Name: "a", Generation: 1}}
				p.Limits.AllowedQueues = []string{}
				p.Warnings = []string{`the default queue "kaiwo" is not an allowed queue []; workloads must name one`}
			}),
		},
		"Enforce from any matching policy": {
			labels: map[string]string{teamLabel: "ml"},
			policies: []*v1alpha1.KaiwoPolicy{
				makePolicy("cluster").Selector(all).Priority(0).Enforce().Obj(),
				makePolicy("ml").Priority(10).Obj(),
			},
			want: withDefaults(func(p *Policy) {
				p.Name, p.Generation = "ml", 1
				p.Sources = []Source{{Name: "ml", Generation: 1}, {Name: "cluster", Generation: 1}}
				p.Mode = Enforce
			}),
		},
		"equal priority: the name that sorts first wins, with a warning": {
			labels: map[string]string{teamLabel: "ml"},
			policies: []*v1alpha1.KaiwoPolicy{
				makePolicy("zeta").Selector(all).Priority(5).Queue("from-zeta").Obj(),
				makePolicy("alpha").Selector(all).Priority(5).Queue("from-alpha").Obj(),
			},
			want: withDefaults(func(p *Policy) {
				p.Name, p.Generation = "alpha", 1
				p.Sources = []Source{{Name: "alpha", Generation: 1}, {Name: "zeta", Generation: 1}}
				p.Defaults.Queue = "from-alpha"
				p.Warnings = []string{`KaiwoPolicies "alpha" and "zeta" have the same priority 5 and both select this namespace; a field either locks takes the locking policy's value, other fields come from "alpha" (by name)`}
			}),
		},
		"equal priority: a lock wins over the other's default, whatever the names": {
			labels: map[string]string{teamLabel: "ml"},
			policies: []*v1alpha1.KaiwoPolicy{
				makePolicy("strict").Selector(all).Priority(5).Queue("team-ml").TTL(600).Locked("queue").Obj(),
				makePolicy("open").Selector(all).Priority(5).Queue("anything").TTL(60).PriorityClass("high").Obj(),
			},
			want: withDefaults(func(p *Policy) {
				p.Name, p.Generation = "open", 1
				p.Sources = []Source{{Name: "open", Generation: 1}, {Name: "strict", Generation: 1}}
				p.Defaults.Queue = "team-ml"
				p.Defaults.TTLSecondsAfterFinished = ptr.To[int32](60)
				p.Defaults.PriorityClass = "high"
				p.Locked = []string{"queue"}
				p.Warnings = []string{`KaiwoPolicies "open" and "strict" have the same priority 5 and both select this namespace; a field either locks takes the locking policy's value, other fields come from "open" (by name)`}
			}),
		},
		"a lock of a lower priority does not take the value from a higher one": {
			labels: map[string]string{teamLabel: "ml"},
			policies: []*v1alpha1.KaiwoPolicy{
				makePolicy("low").Selector(all).Priority(1).Queue("low-q").Locked("queue").Obj(),
				makePolicy("high").Selector(all).Priority(9).Queue("high-q").Obj(),
			},
			want: withDefaults(func(p *Policy) {
				p.Name, p.Generation = "high", 1
				p.Sources = []Source{{Name: "high", Generation: 1}, {Name: "low", Generation: 1}}
				p.Defaults.Queue = "high-q"
				p.Locked = []string{"queue"}
			}),
		},
		"an invalid policy fails its namespaces closed": {
			labels: map[string]string{teamLabel: "ml"},
			policies: []*v1alpha1.KaiwoPolicy{
				makePolicy("ml").CPUPerGPU("-1").Obj(),
			},
			want: withDefaults(func(p *Policy) {
				p.Name, p.Generation = "ml", 1
				p.Sources = []Source{{Name: "ml", Generation: 1}}
				p.Defaults.CPUPerGPU = resource.MustParse("-1")
				p.Err = errors.New(`KaiwoPolicy "ml" is invalid: spec.defaults.cpuPerGpu: Invalid value: "-1": must be greater than 0`)
			}),
		},
		"a policy with an invalid selector selects nothing": {
			labels: map[string]string{teamLabel: "ml"},
			policies: []*v1alpha1.KaiwoPolicy{
				makePolicy("ml").Selector(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: teamLabel, Operator: "Near"},
				}}).Queue("q").Obj(),
			},
			want: Default(),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cs := make([]*Compiled, len(tc.policies))
			for i, p := range tc.policies {
				cs[i], _ = Compile(p, nil)
			}
			got := Resolve(tc.labels, cs)
			if diff := cmp.Diff(tc.want, got, policyCmp); diff != "" {
				t.Errorf("Resolve() mismatch (-want,+got):\n%s", diff)
			}
		})
	}
}

// TestMergedPatchEqualsPatchesInTurn checks that the one merged PodTemplatePatch
// does what applying each policy's patch in turn, lowest priority first, does.
func TestMergedPatchEqualsPatchesInTurn(t *testing.T) {
	low := `{"metadata":{"annotations":{"a":"low","b":"low"}},"spec":{"containers":[{"name":"main","env":[{"name":"X","value":"low"},{"name":"Y","value":"low"}]}],"nodeSelector":{"pool":"low"}}}`
	high := `{"metadata":{"annotations":{"a":"high"}},"spec":{"containers":[{"name":"main","env":[{"name":"X","value":"high"}]},{"name":"sidecar","image":"s"}],"nodeSelector":{"pool":null}}}`
	template := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"user": "u"}},
		Spec: corev1.PodSpec{
			Containers:   []corev1.Container{{Name: "main", Image: "m", Env: []corev1.EnvVar{{Name: "Z", Value: "user"}}}},
			NodeSelector: map[string]string{"pool": "user", "zone": "a"},
		},
	}
	original, err := json.Marshal(template)
	if err != nil {
		t.Fatal(err)
	}

	want := original
	for _, patch := range []string{low, high} {
		if want, err = strategicpatch.StrategicMergePatch(want, []byte(patch), corev1.PodTemplateSpec{}); err != nil {
			t.Fatal(err)
		}
	}
	p := Resolve(map[string]string{teamLabel: "ml"}, compiled(
		makePolicy("low").Selector(&metav1.LabelSelector{}).Priority(1).Patch(low).Obj(),
		makePolicy("ml").Priority(2).Patch(high).Obj(),
	))
	if p.Err != nil {
		t.Fatalf("Resolve().Err = %v", p.Err)
	}
	got, err := strategicpatch.StrategicMergePatch(original, p.PodTemplatePatch, corev1.PodTemplateSpec{})
	if err != nil {
		t.Fatal(err)
	}
	var wantT, gotT corev1.PodTemplateSpec
	if err := json.Unmarshal(want, &wantT); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(got, &gotT); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantT, gotT); diff != "" {
		t.Errorf("merged patch applied (-want,+got):\n%s", diff)
	}
	if v := gotT.Annotations["a"]; v != "high" {
		t.Errorf("annotation a = %q, want the higher priority's %q", v, "high")
	}
}
