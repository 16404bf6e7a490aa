package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMutateOldFollowsChangedAnnotations: `mutate --old OLD -f NEW` previews an UPDATE: Kaiwo's earlier values follow the
// changed annotations; without --old they are a conflict; a bad --old file is an error.
func TestMutateOldFollowsChangedAnnotations(t *testing.T) {
	live, errOut, code := mutateCLI(t, mustRead(t, "../../examples/deployment.yaml"), "--quiet")
	if code != 0 {
		t.Fatalf("create: exit %d: %s", code, errOut)
	}
	oldFile := filepath.Join(t.TempDir(), "old.yaml")
	if err := os.WriteFile(oldFile, []byte(live), 0o600); err != nil {
		t.Fatal(err)
	}
	next := strings.Replace(live, `kaiwo.silogen.ai/gpus: "1"`, `kaiwo.silogen.ai/gpus: "2"`, 1)
	next = strings.Replace(next, "    kaiwo.silogen.ai/workload-configmap: vllm-config\n", "", 1)
	out, errOut, code := mutateCLI(t, next, "--old", oldFile)
	if code != 0 {
		t.Fatalf("update: exit %d: %s", code, errOut)
	}
	for _, want := range []string{`nvidia.com/gpu: "2"`, "memory: 64Gi"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, gone := range []string{"kaiwo-workload", "mountPath: /workload/app", `nvidia.com/gpu: "1"`} {
		if strings.Contains(out, gone) {
			t.Errorf("output still has %q:\n%s", gone, out)
		}
	}
	if _, errOut, code := mutateCLI(t, next); code != 1 || !strings.Contains(errOut, "conflicts with the 2 nvidia.com/gpu") {
		t.Errorf("without --old: exit %d, %s", code, errOut)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	_ = os.WriteFile(bad, []byte(live+"\n---\n"+live), 0o600)
	if _, errOut, code := mutateCLI(t, next, "--old", bad); code != 1 || !strings.Contains(errOut, "appears twice") {
		t.Errorf("--old with a duplicate: exit %d, %s", code, errOut)
	}
	if _, _, code := mutateCLI(t, next, "--old", "/nonexistent"); code != 1 {
		t.Errorf("--old missing file: exit %d", code)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestMutatePolicyWarnings: what a policy resolved fail-open is printed, as its status would say.
func TestMutatePolicyWarnings(t *testing.T) {
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(pol, []byte(`apiVersion: kaiwo.silogen.ai/v1alpha1
kind: KaiwoPolicy
metadata: {name: flavored}
spec:
  namespaceSelector: {}
  defaults:
    gpusPerNodeFrom: {resourceFlavor: mi300x, nodeLabel: gpus}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := mutateCLI(t, job(`kaiwo.silogen.ai/gpus: "1"`, ""), "--policy", pol)
	if code != 0 || !strings.Contains(errOut, `Warning: policy: KaiwoPolicy "flavored": spec.defaults.gpusPerNodeFrom.resourceFlavor: ResourceFlavor "mi300x" not found`) {
		t.Errorf("exit %d, stderr:\n%s", code, errOut)
	}
	if _, errOut, _ := mutateCLI(t, job(`kaiwo.silogen.ai/gpus: "1"`, ""), "--policy", pol, "--quiet"); errOut != "" {
		t.Errorf("--quiet printed %q", errOut)
	}
}
