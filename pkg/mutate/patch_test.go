package mutate_test

import (
	"encoding/json"
	"testing"

	"github.com/silogen/kaiwo-webhook/pkg/policy"
	"github.com/silogen/kaiwo-webhook/pkg/typedpatch"
)

// A RayJob from a newer KubeRay, with fields our Go types lack at the top of spec, in a worker group and
// in a container: the patch keeps them all, and removes nothing.
const newerRayJob = `{
 "apiVersion": "ray.io/v1", "kind": "RayJob",
 "metadata": {"name": "r", "namespace": "ml", "annotations": {"kaiwo.silogen.ai/gpus": "16"}},
 "spec": {
  "entrypoint": "python main.py",
  "futureTopLevel": {"mode": "fast", "n": 3},
  "rayClusterSpec": {
   "headGroupSpec": {"rayStartParams": {}, "template": {"spec": {"containers": [{"name": "head", "image": "ray"}]}}},
   "workerGroupSpecs": [{
     "groupName": "gpu", "replicas": 1, "rayStartParams": {},
     "futureGroupField": ["a", "b"],
     "template": {"spec": {"containers": [{"name": "w", "image": "ray", "futureContainerField": {"x": true}}]}}
   }]
  }
 }
}`

func TestPatchKeepsUnknownFields(t *testing.T) {
	res, err := kinds.Admit([]byte(newerRayJob), func(string) *policy.Policy { return policy.Default() }, "bob")
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range res.Patch {
		if op.Operation == "remove" {
			t.Errorf("patch removes %s", op.Path)
		}
	}
	out, err := typedpatch.Apply([]byte(newerRayJob), res.Patch)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Spec struct {
			FutureTopLevel map[string]any `json:"futureTopLevel"`
			Suspend        bool           `json:"suspend"`
			RayClusterSpec struct {
				WorkerGroupSpecs []struct {
					Replicas         int      `json:"replicas"`
					FutureGroupField []string `json:"futureGroupField"`
					Template         struct {
						Spec struct {
							Containers []map[string]any `json:"containers"`
						} `json:"spec"`
					} `json:"template"`
				} `json:"workerGroupSpecs"`
			} `json:"rayClusterSpec"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	g := m.Spec.RayClusterSpec.WorkerGroupSpecs[0]
	if m.Spec.FutureTopLevel["mode"] != "fast" || len(g.FutureGroupField) != 2 || g.Template.Spec.Containers[0]["futureContainerField"] == nil {
		t.Errorf("unknown fields lost:\n%s", out)
	}
	if !m.Spec.Suspend || g.Replicas != 2 {
		t.Errorf("not mutated: suspend=%v replicas=%d", m.Spec.Suspend, g.Replicas)
	}
	again, err := kinds.Admit(out, func(string) *policy.Policy { return policy.Default() }, "bob")
	if err != nil || len(again.Patch) != 0 || len(again.Warnings) != 0 {
		t.Errorf("second pass: err=%v patch=%v warnings=%v", err, again.Patch, again.Warnings)
	}
}

func TestAdmitUnsupportedAndBadJSON(t *testing.T) {
	pol := func(string) *policy.Policy { return nil }
	for name, raw := range map[string]string{
		"configmap":  `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}`,
		"not json":   `{"apiVersion":`,
		"bad field":  `{"apiVersion":"batch/v1","kind":"Job","spec":{"parallelism":"many"}}`,
		"kind twice": `{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"x"},"apiVersion":"apps/v1","kind":"Deployment"}`,
		"array":      `[{"apiVersion":"batch/v1","kind":"Job"}]`,
		"empty":      ``,
	} {
		if _, err := kinds.Admit([]byte(raw), pol, ""); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
