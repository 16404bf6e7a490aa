package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: d
  namespace: ml
  annotations: {kaiwo.silogen.ai/gpus: "8"}
spec:
  replicas: 2
  selector: {matchLabels: {app: d}}
  template:
    metadata: {labels: {app: d}}
    spec:
      containers:
        - name: main
          image: busybox
`

// stored is what the cluster keeps of in after a CREATE by alice, written to a file for --old.
func stored(t *testing.T, in string, args []string) (string, string) {
	t.Helper()
	out, errOut, code := mutateCLI(t, in, append(args, "--quiet")...)
	if code != 0 {
		t.Fatalf("create: exit %d: %s", code, errOut)
	}
	path := filepath.Join(t.TempDir(), "old.yaml")
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return out, path
}

// TestMutateOld previews UPDATEs: both webhooks' logic, with the stored object from --old.
func TestMutateOld(t *testing.T) {
	inTeam := []string{"--policy", teamPolicy, "--namespace-labels", "kaiwo.silogen.ai/team=ml", "--user", "alice"}
	dep, depOld := stored(t, deployment, inTeam)
	jb, jobOld := stored(t, job(`kaiwo.silogen.ai/gpus: "8"`, ""), inTeam)
	asBob := append(append([]string{}, inTeam[:4]...), "--user", "bob")
	cases := map[string]struct {
		in       string
		args     []string
		code     int
		contains []string
	}{
		"replicas grown past the limit": {in: strings.Replace(dep, "replicas: 2", "replicas: 5", 1), args: append(inTeam, "--old", depOld), code: 1,
			contains: []string{"40 GPUs", "spec.replicas=5", "maxGpusPerWorkload (32)"}},
		"replicas within the limit, by bob: the record stays alice": {in: strings.Replace(dep, "replicas: 2", "replicas: 4", 1), args: append(asBob, "--old", depOld), code: 0,
			contains: []string{"replicas: 4", "kaiwo.silogen.ai/user: alice"}},
		"user label changed": {in: strings.Replace(dep, "kaiwo.silogen.ai/user: alice", "kaiwo.silogen.ai/user: bob", 1), args: append(asBob, "--old", depOld), code: 1,
			contains: []string{"metadata.labels[kaiwo.silogen.ai/user]", `"bob"`, "immutable"}},
		"a Job's queue label moved": {in: strings.Replace(jb, "kueue.x-k8s.io/queue-name: team-ml", "kueue.x-k8s.io/queue-name: team-ml-low", 1), args: append(inTeam, "--old", jobOld), code: 1,
			contains: []string{"metadata.labels[kueue.x-k8s.io/queue-name]", `"team-ml-low"`, "locked"}},
		"a Job relabelled, not moved": {in: strings.Replace(jb, "labels:", "labels:\n    app: x", 1), args: append(inTeam, "--old", jobOld), code: 0,
			contains: []string{"app: x"}},
		"a GPU DaemonSet in an Enforce namespace": {in: "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: p, namespace: ml}\nspec: {template: {spec: {containers: [{name: c, image: x, resources: {limits: {amd.com/gpu: 1}}}]}}}\n", args: inTeam, code: 1,
			contains: []string{"spec.template.spec.containers[0].resources.limits[amd.com/gpu]", "Enforce", "batch/v1 Job"}},
		"a document without a namespace matches the stored one": {in: noNamespace(t, strings.Replace(dep, "replicas: 2", "replicas: 4", 1)), args: append(asBob, "--old", depOld), code: 0,
			contains: []string{"replicas: 4", "kaiwo.silogen.ai/user: alice"}},
		"missing old file": {in: dep, args: append(inTeam, "--old", "/nonexistent.yaml"), code: 1, contains: []string{"--old /nonexistent.yaml"}},
		"old object twice": {in: dep, args: append(inTeam, "--old", twice(t, dep)), code: 1, contains: []string{"appears twice"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			out, errOut, code := mutateCLI(t, tc.in, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			for _, s := range tc.contains {
				if !strings.Contains(out+errOut, s) {
					t.Errorf("output lacks %q\nstdout:\n%s\nstderr:\n%s", s, out, errOut)
				}
			}
		})
	}
}

func twice(t *testing.T, doc string) string {
	path := filepath.Join(t.TempDir(), "twice.yaml")
	if err := os.WriteFile(path, []byte(doc+"---\n"+doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func noNamespace(t *testing.T, doc string) string {
	if !strings.Contains(doc, "  namespace: ml\n") {
		t.Fatalf("no namespace to remove in:\n%s", doc)
	}
	return strings.Replace(doc, "  namespace: ml\n", "", 1)
}
