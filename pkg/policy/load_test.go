package policy

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
)

// TestCompileSpecExample loads the example policy of SPEC.md and checks what it compiles to.
func TestCompileSpecExample(t *testing.T) {
	f, err := os.Open("testdata/team-ml.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	policies, flavors, err := Load(f)
	if err != nil {
		t.Fatalf("Load() error = %v", err)
	}
	if len(policies) != 1 || len(flavors) != 0 {
		t.Fatalf("Load() = %d policies, %d flavors, want 1 and 0", len(policies), len(flavors))
	}
	c, errs := Compile(&policies[0], flavors.Lookup)
	if len(errs) > 0 {
		t.Fatalf("Compile() errors = %v", errs)
	}
	if c.Name != "team-ml" || c.Priority != 10 || len(c.Warnings) > 0 {
		t.Errorf("Compile() = name %q, priority %d, warnings %q; want team-ml, 10, none", c.Name, c.Priority, c.Warnings)
	}
	want := &Policy{
		Name:    "team-ml",
		Sources: []Source{{Name: "team-ml"}},
		Mode:    Enforce,
		Defaults: Defaults{
			Queue:                   "team-ml",
			GPUVendor:               "amd",
			GPUsPerNode:             8,
			CPUPerGPU:               resource.MustParse("4"),
			MemoryPerGPU:            resource.MustParse("32Gi"),
			ShmSize:                 ptr.To(resource.MustParse("64Gi")),
			TTLSecondsAfterFinished: ptr.To[int32](3600),
			PriorityClass:           "normal",
			ImagePullSecret:         "regcred",
			Tolerations:             []corev1.Toleration{{Key: "amd.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
			NodeSelector:            map[string]string{"node-pool": "gpu"},
		},
		Limits: Limits{
			MaxGPUsPerWorkload: 32,
			AllowedVendors:     []string{"amd"},
			AllowedQueues:      []string{"team-ml", "team-ml-low"},
			AllowedSecrets:     [][]string{{"hf-token", "team-ml-*"}},
		},
		Locked:           []string{"nodeSelector", "queue", "tolerations"},
		PodTemplatePatch: []byte(`{"metadata":{"annotations":{"team":"ml"}}}`),
		LocalQueue:       &LocalQueue{Name: "team-ml", ClusterQueue: "kaiwo"},
	}
	if diff := cmp.Diff(want, c.Policy(), policyCmp); diff != "" {
		t.Errorf("Compile().Policy() mismatch (-want,+got):\n%s", diff)
	}
	for ns, want := range map[string]bool{"ml": true, "vision": false} {
		if got := c.Selector.Matches(labels.Set{teamLabel: ns}); got != want {
			t.Errorf("selector matches team %s = %v, want %v", ns, got, want)
		}
	}
}

func TestCompileGPUsPerNodeFrom(t *testing.T) {
	const label = "beta.amd.com/gpu.family.AI"
	fallback := "; GPUs per node fall back to a lower-priority policy or the built-in 8"
	cases := map[string]struct {
		flavors     Flavors
		wantGPUs    int32
		wantWarning string
	}{
		"read from the flavor's node label": {
			flavors:  Flavors{"mi300x": {label: "4"}},
			wantGPUs: 4,
		},
		"missing flavor: built-in 8 and a warning": {
			flavors:     Flavors{"other": {label: "4"}},
			wantGPUs:    8,
			wantWarning: `spec.defaults.gpusPerNodeFrom.resourceFlavor: ResourceFlavor "mi300x" not found` + fallback,
		},
		"missing label": {
			flavors:     Flavors{"mi300x": {}},
			wantGPUs:    8,
			wantWarning: `spec.defaults.gpusPerNodeFrom.nodeLabel: ResourceFlavor "mi300x" has no node label "beta.amd.com/gpu.family.AI"` + fallback,
		},
		"label that is not a positive integer": {
			flavors:     Flavors{"mi300x": {label: "MI300X"}},
			wantGPUs:    8,
			wantWarning: `spec.defaults.gpusPerNodeFrom.nodeLabel: node label "beta.amd.com/gpu.family.AI" of ResourceFlavor "mi300x" is "MI300X", must be a positive integer` + fallback,
		},
		"zero": {
			flavors:     Flavors{"mi300x": {label: "0"}},
			wantGPUs:    8,
			wantWarning: `spec.defaults.gpusPerNodeFrom.nodeLabel: node label "beta.amd.com/gpu.family.AI" of ResourceFlavor "mi300x" is "0", must be a positive integer` + fallback,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c, errs := Compile(makePolicy("ml").GPUsPerNodeFrom("mi300x", label).Obj(), tc.flavors.Lookup)
			if len(errs) > 0 {
				t.Fatalf("Compile() errors = %v; an unresolvable flavor must not be an error", errs)
			}
			p := c.Policy()
			if p.Defaults.GPUsPerNode != tc.wantGPUs {
				t.Errorf("GPUsPerNode = %d, want %d", p.Defaults.GPUsPerNode, tc.wantGPUs)
			}
			var want []string
			if tc.wantWarning != "" {
				want = []string{tc.wantWarning}
			}
			if diff := cmp.Diff(want, c.Warnings); diff != "" {
				t.Errorf("Compiled.Warnings mismatch (-want,+got):\n%s", diff)
			}
			if p.Err != nil {
				t.Errorf("Policy().Err = %v, want nil (fail open)", p.Err)
			}
		})
	}
}

func TestLoadFlavorsOffline(t *testing.T) {
	f, err := os.Open("testdata/gpus-from-flavor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	policies, flavors, err := Load(f)
	if err != nil {
		t.Fatalf("Load() error = %v", err)
	}
	if diff := cmp.Diff(Flavors{"mi300x": {"beta.amd.com/gpu.family.AI": "4"}}, flavors); diff != "" {
		t.Errorf("Load() flavors mismatch (-want,+got):\n%s", diff)
	}
	c, _ := Compile(&policies[0], flavors.Lookup)
	if got := Resolve(nil, []*Compiled{c}).Defaults.GPUsPerNode; got != 4 {
		t.Errorf("GPUsPerNode = %d, want 4 from the flavor", got)
	}
}

func TestLoad(t *testing.T) {
	const policy = "apiVersion: kaiwo.silogen.ai/v1alpha1\nkind: KaiwoPolicy\nmetadata: {name: %s}\nspec:\n  namespaceSelector: {}\n"
	cases := map[string]struct {
		yaml         string
		wantPolicies []string
		wantFlavors  []string
		wantErr      string
	}{
		"several documents, comments and empty documents": {
			yaml: "# policies\n---\n" + strings.ReplaceAll(policy, "%s", "a") + "---\n# nothing\n---\n" +
				strings.ReplaceAll(policy, "%s", "b") +
				"---\napiVersion: kueue.x-k8s.io/v1beta1\nkind: ResourceFlavor\nmetadata: {name: old}\n",
			wantPolicies: []string{"a", "b"},
			wantFlavors:  []string{"old"},
		},
		"JSON": {
			yaml:         `{"apiVersion":"kaiwo.silogen.ai/v1alpha1","kind":"KaiwoPolicy","metadata":{"name":"j"},"spec":{"namespaceSelector":{}}}`,
			wantPolicies: []string{"j"},
		},
		"a List as kubectl get -o yaml prints it": {
			yaml: "apiVersion: v1\nkind: List\nitems:\n- apiVersion: kaiwo.silogen.ai/v1alpha1\n  kind: KaiwoPolicy\n  metadata: {name: l1}\n  spec: {namespaceSelector: {}}\n" +
				"- apiVersion: kueue.x-k8s.io/v1beta2\n  kind: ResourceFlavor\n  metadata: {name: f}\n  spec: {nodeLabels: {gpus: '8'}}\n",
			wantPolicies: []string{"l1"},
			wantFlavors:  []string{"f"},
		},
		"a KaiwoPolicyList whose items carry no kind": {
			yaml:         "apiVersion: kaiwo.silogen.ai/v1alpha1\nkind: KaiwoPolicyList\nitems:\n- metadata: {name: i1}\n  spec: {namespaceSelector: {}}\n",
			wantPolicies: []string{"i1"},
		},
		"unknown field in spec.defaults, named with its path and document": {
			yaml:    strings.ReplaceAll(policy, "%s", "a") + "---\n" + strings.ReplaceAll(policy, "%s", "b") + "  defaults: {gpuVendr: amd}\n",
			wantErr: `document 2: KaiwoPolicy "b": strict decoding error: unknown field "spec.defaults.gpuVendr"`,
		},
		"unknown top-level field": {
			yaml:    strings.ReplaceAll(policy, "%s", "a") + "specs: {}\n",
			wantErr: `document 1: KaiwoPolicy "a": strict decoding error: unknown field "specs"`,
		},
		"duplicate field": {
			yaml:    strings.ReplaceAll(policy, "%s", "a") + "  priority: 1\n  priority: 2\n",
			wantErr: "document 1: KaiwoPolicy \"a\": strict decoding error: yaml: unmarshal errors:\n  line 7: key \"priority\" already set in map",
		},
		"wrong type": {
			yaml:    strings.ReplaceAll(policy, "%s", "a") + "  priority: high\n",
			wantErr: `document 1: KaiwoPolicy "a": json: cannot unmarshal string into Go struct field KaiwoPolicySpec.spec.priority of type int32`,
		},
		"bad quantity": {
			yaml:    strings.ReplaceAll(policy, "%s", "a") + "  defaults: {memoryPerGpu: 32GB}\n",
			wantErr: `document 1: KaiwoPolicy "a": quantities must match the regular expression`,
		},
		"another kind, named": {
			yaml:    strings.ReplaceAll(policy, "%s", "a") + "---\napiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\n",
			wantErr: `document 2: kind "Job" (apiVersion "batch/v1") is not supported: must be KaiwoPolicy (kaiwo.silogen.ai/v1alpha1) or ResourceFlavor (kueue.x-k8s.io/v1beta1, kueue.x-k8s.io/v1beta2)`,
		},
		"another version": {
			yaml:    "apiVersion: kaiwo.silogen.ai/v1\nkind: KaiwoPolicy\nmetadata: {name: a}\n",
			wantErr: `document 1: kind "KaiwoPolicy" (apiVersion "kaiwo.silogen.ai/v1") is not supported`,
		},
		"a List item of another kind": {
			yaml:    "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c}\n",
			wantErr: `document 1, item 1: kind "ConfigMap" (apiVersion "v1") is not supported`,
		},
		"missing kind": {
			yaml:    "metadata: {name: a}\nspec: {}\n",
			wantErr: `document 1: apiVersion and kind must be set`,
		},
		"the same policy twice": {
			yaml:    strings.ReplaceAll(policy, "%s", "a") + "---\n" + strings.ReplaceAll(policy, "%s", "a"),
			wantErr: `document 2: KaiwoPolicy "a" is already defined in document 1`,
		},
		"not YAML": {
			yaml:    "apiVersion: [\n",
			wantErr: `document 1: error converting YAML to JSON`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			policies, flavors, err := Load(strings.NewReader(tc.yaml))
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("Load() error = %v, want one starting with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load() error = %v", err)
			}
			var gotPolicies, gotFlavors []string
			for _, p := range policies {
				gotPolicies = append(gotPolicies, p.Name)
			}
			for name := range flavors {
				gotFlavors = append(gotFlavors, name)
			}
			if diff := cmp.Diff(tc.wantPolicies, gotPolicies); diff != "" {
				t.Errorf("Load() policies mismatch (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantFlavors, gotFlavors); diff != "" {
				t.Errorf("Load() flavors mismatch (-want,+got):\n%s", diff)
			}
		})
	}
}
