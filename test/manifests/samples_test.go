package manifests_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	kueue "sigs.k8s.io/kueue/apis/kueue/v1beta2"
	"sigs.k8s.io/yaml"

	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// TestSamplePolicy: the sample policy loads strictly, validates, and with the
// sample ResourceFlavor resolves to the Kaiwo CLI's defaults (8 GPUs per node).
func TestSamplePolicy(t *testing.T) {
	var docs bytes.Buffer
	for _, f := range []string{"samples/kaiwopolicy-default.yaml", "kueue/resourceflavor.yaml"} {
		b, err := os.ReadFile(filepath.Join(root(t), "config", f))
		if err != nil {
			t.Fatal(err)
		}
		docs.WriteString("---\n")
		docs.Write(b)
	}
	policies, flavors, err := policy.Load(&docs)
	if err != nil {
		t.Fatal(err)
	}
	if len(policies) != 1 {
		t.Fatalf("want one policy, got %d", len(policies))
	}
	p := &policies[0]
	if errs := policy.Validate(p); len(errs) > 0 {
		t.Fatalf("sample policy is invalid: %v", errs.ToAggregate())
	}
	c, errs := policy.Compile(p, flavors.Lookup)
	if len(errs) > 0 || c.Degraded() {
		t.Fatalf("sample policy does not compile cleanly: %v %v", errs.ToAggregate(), c.Warnings)
	}
	for name, tc := range map[string]struct {
		labels map[string]string
		want   string // policy name, "" for the built-in default
	}{
		"team namespace":  {map[string]string{"kaiwo.silogen.ai/team": "ml"}, p.Name},
		"other namespace": {map[string]string{"team": "ml"}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			got := policy.Resolve(tc.labels, []*policy.Compiled{c})
			if tc.want == "" {
				if len(got.Sources) != 0 {
					t.Errorf("resolved to %v, want the built-in default", got.Sources)
				}
				return
			}
			if len(got.Sources) != 1 || got.Sources[0].Name != tc.want {
				t.Fatalf("resolved to %v, want %s", got.Sources, tc.want)
			}
			d := got.Defaults
			if got.Mode != policy.OptIn || d.Queue != "kaiwo" || d.GPUVendor != "amd" || d.GPUsPerNode != 8 ||
				d.CPUPerGPU.String() != "4" || d.MemoryPerGPU.String() != "32Gi" {
				t.Errorf("resolved %s: mode %s, queue %q, vendor %q, %d GPUs per node, %s CPU and %s per GPU",
					tc.want, got.Mode, d.Queue, d.GPUVendor, d.GPUsPerNode, d.CPUPerGPU.String(), d.MemoryPerGPU.String())
			}
			if got.LocalQueue == nil || got.LocalQueue.Name != "kaiwo" || got.LocalQueue.ClusterQueue != "kaiwo" {
				t.Errorf("localQueue %+v, want kaiwo on ClusterQueue kaiwo", got.LocalQueue)
			}
		})
	}
}

// TestKueueSamples: config/kueue builds, each object decodes strictly into
// Kueue's v1beta2 types, and the pieces refer to each other.
func TestKueueSamples(t *testing.T) {
	objs := renderKustomize(t, "kueue")
	if diff := cmp.Diff([]string{"ClusterQueue", "ResourceFlavor"}, kinds(objs)); diff != "" {
		t.Errorf("kinds (-want,+got):\n%s", diff)
	}
	for _, o := range objs {
		if o.GetAPIVersion() != kueue.GroupVersion.String() {
			t.Errorf("%s %s: apiVersion %s, want %s (Kueue's storage version)", o.GetKind(), o.GetName(), o.GetAPIVersion(), kueue.GroupVersion)
		}
	}
	rf := into[kueue.ResourceFlavor](t, find(t, objs, "ResourceFlavor", "base-gpu-flavour"))
	if rf.Spec.NodeLabels["beta.amd.com/gpu.family.AI"] != "8" {
		t.Errorf("ResourceFlavor nodeLabels %v, want beta.amd.com/gpu.family.AI: \"8\"", rf.Spec.NodeLabels)
	}
	cq := into[kueue.ClusterQueue](t, find(t, objs, "ClusterQueue", "kaiwo"))
	if len(cq.Spec.ResourceGroups) != 1 {
		t.Fatalf("want one resource group, got %d", len(cq.Spec.ResourceGroups))
	}
	rg := cq.Spec.ResourceGroups[0]
	if len(rg.Flavors) != 1 || string(rg.Flavors[0].Name) != rf.Name {
		t.Fatalf("ClusterQueue flavors %+v, want %s", rg.Flavors, rf.Name)
	}
	quota := map[string]string{}
	for _, r := range rg.Flavors[0].Resources {
		quota[string(r.Name)] = r.NominalQuota.String()
	}
	for _, r := range []string{"cpu", "memory", "amd.com/gpu"} {
		if quota[r] == "" {
			t.Errorf("no %s quota in %v", r, quota)
		}
	}

	b, err := os.ReadFile(filepath.Join(root(t), "config", "kueue", "localqueue.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var lq kueue.LocalQueue
	if err := yaml.UnmarshalStrict(b, &lq); err != nil {
		t.Fatal(err)
	}
	if string(lq.Spec.ClusterQueue) != cq.Name || lq.APIVersion != kueue.GroupVersion.String() {
		t.Errorf("LocalQueue %s points at %q, want ClusterQueue %s", lq.APIVersion, lq.Spec.ClusterQueue, cq.Name)
	}
}
