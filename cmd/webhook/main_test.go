package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

const teamPolicy = "../../pkg/policy/testdata/team-ml.yaml"

func job(annots, resources string) string {
	return `apiVersion: batch/v1
kind: Job
metadata:
  name: j
  namespace: ml
  annotations: {` + annots + `}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: main
          image: busybox
          resources: {` + resources + `}
`
}

func mutateCLI(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(append([]string{"mutate", "-f", "-"}, args...), strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

// TestMutatePolicyFile is the offline acceptance of the namespace policy: SPEC's example policy
// in a namespace it selects.
func TestMutatePolicyFile(t *testing.T) {
	inTeam := []string{"--policy", teamPolicy, "--namespace-labels", "kaiwo.silogen.ai/team=ml", "--user", "alice"}
	cases := map[string]struct {
		in       string
		args     []string
		code     int
		contains []string
	}{
		"team defaults applied": {in: job(`kaiwo.silogen.ai/gpus: "8"`, ""), args: inTeam, code: 0, contains: []string{
			"kueue.x-k8s.io/queue-name: team-ml", "kueue.x-k8s.io/priority-class: normal", "node-pool: gpu", "key: amd.com/gpu",
			"name: regcred", "sizeLimit: 64Gi", "team: ml", `"policy":"team-ml"`, `amd.com/gpu: "8"`}},
		"locked queue override denied": {in: job(`kaiwo.silogen.ai/queue: other`, ""), args: inTeam, code: 1, contains: []string{
			"metadata.annotations[kaiwo.silogen.ai/queue]", `"other"`, `KaiwoPolicy "team-ml"`, "defaults.queue"}},
		"GPUs over the limit denied": {in: strings.Replace(job(`kaiwo.silogen.ai/gpus: "8"`, ""), "spec:\n  template:", "spec:\n  parallelism: 5\n  template:", 1), args: inTeam, code: 1, contains: []string{
			"kaiwo.silogen.ai/gpus", "40", "limits.maxGpusPerWorkload (32)", `KaiwoPolicy "team-ml"`}},
		"pod GPUs over a node denied": {in: job(`kaiwo.silogen.ai/gpus: "33"`, ""), args: inTeam, code: 1, contains: []string{
			"kaiwo.silogen.ai/gpus", "33", "more than the 8 GPUs of a node", `KaiwoPolicy "team-ml"`}},
		"Secret outside the allowed patterns denied": {in: job(`kaiwo.silogen.ai/env: "envVars: [{fromSecret: {name: T, secret: prod-db, key: k}}]"`, ""), args: inTeam, code: 1, contains: []string{
			"fromSecret.secret", `Secret "prod-db"`, `KaiwoPolicy "team-ml"`, "limits.allowedSecrets", `"team-ml-*"`}},
		"allowed Secret pattern": {in: job(`kaiwo.silogen.ai/env: "envVars: [{fromSecret: {name: T, secret: team-ml-db, key: k}}]"`, ""), args: inTeam, code: 0, contains: []string{"name: team-ml-db"}},
		"unannotated GPU job managed in an Enforce namespace": {in: job("", `limits: {amd.com/gpu: "2"}`), args: inTeam, code: 0, contains: []string{
			"kueue.x-k8s.io/queue-name: team-ml", "suspend: true", "kaiwo.silogen.ai/managed"}},
		"unannotated CPU job untouched": {in: job("", ""), args: inTeam, code: 0, contains: []string{"name: j"}},
		"vendor outside the allowed ones": {in: job(`kaiwo.silogen.ai/gpu-vendor: nvidia`, ""), args: inTeam, code: 1, contains: []string{
			"kaiwo.silogen.ai/gpu-vendor", `"nvidia"`, "limits.allowedVendors"}},
		"namespace not selected: built-in defaults": {in: job(`kaiwo.silogen.ai/gpus: "1"`, ""), args: []string{"--policy", teamPolicy, "--namespace-labels", "kaiwo.silogen.ai/team=vision"}, code: 0, contains: []string{
			"kueue.x-k8s.io/queue-name: kaiwo", `"policy":"builtin-default"`}},
		"patch output":         {in: job(`kaiwo.silogen.ai/gpus: "1"`, ""), args: []string{"--patch"}, code: 0, contains: []string{`"op": "add"`, `"path": "/spec/suspend"`}},
		"bad namespace labels": {in: job("", ""), args: []string{"--namespace-labels", "novalue"}, code: 2, contains: []string{"--namespace-labels", "not k=v"}},
		"missing policy file":  {in: job("", ""), args: []string{"--policy", "/nonexistent.yaml"}, code: 1, contains: []string{"/nonexistent.yaml"}},
		"not yaml":             {in: "{", code: 1, contains: []string{"document 0"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			out, errOut, code := mutateCLI(t, tc.in, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			all := out + errOut
			for _, s := range tc.contains {
				if !strings.Contains(all, s) {
					t.Errorf("output lacks %q\nstdout:\n%s\nstderr:\n%s", s, out, errOut)
				}
			}
			if tc.code != 0 && out != "" {
				t.Errorf("a denial printed a manifest:\n%s", out)
			}
		})
	}
}

func TestMutatePatchIsJSON(t *testing.T) {
	out, _, code := mutateCLI(t, job(`kaiwo.silogen.ai/gpus: "1"`, ""), "--patch")
	var ops []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &ops) != nil || len(ops) == 0 {
		t.Fatalf("exit %d, output not a JSON patch:\n%s", code, out)
	}
}

func TestUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(nil, nil, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "serve") {
		t.Errorf("no command: exit %d, %q", code, errOut.String())
	}
	if code := run([]string{"bogus"}, nil, &out, &errOut); code != 2 {
		t.Errorf("unknown command: exit %d", code)
	}
	if code := run([]string{"mutate"}, nil, &out, &errOut); code != 2 {
		t.Errorf("mutate without -f: exit %d", code)
	}
}

// Bad durations are refused before the server starts, naming the flag, the value and what is allowed.
func TestServeFlagsValidated(t *testing.T) {
	cases := map[string]struct {
		args []string
		want string
	}{
		"lease not longer than renew": {[]string{"--leader-elect-lease-duration=5s", "--leader-elect-renew-deadline=10s"},
			"--leader-elect-lease-duration=5s: must be greater than --leader-elect-renew-deadline (10s)"},
		"renew within 1.2 retries": {[]string{"--leader-elect-renew-deadline=2s", "--leader-elect-retry-period=2s"},
			"--leader-elect-renew-deadline=2s: must be greater than 1.2 x --leader-elect-retry-period (2s)"},
		"zero retry":            {[]string{"--leader-elect-retry-period=0s"}, "--leader-elect-retry-period=0s: must be greater than 0"},
		"negative delay":        {[]string{"--shutdown-delay=-1s"}, "--shutdown-delay=-1s: must not be negative"},
		"negative grace":        {[]string{"--graceful-shutdown-timeout=-5s"}, "--graceful-shutdown-timeout=-5s: must not be negative"},
		"zero kueue interval":   {[]string{"--kueue-check-interval=0"}, "--kueue-check-interval=0s: must be greater than 0"},
		"not a duration at all": {[]string{"--shutdown-delay=soon"}, `invalid value "soon" for flag -shutdown-delay`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(append([]string{"serve"}, tc.args...), strings.NewReader(""), &out, &errOut)
			if code != 2 || !strings.Contains(errOut.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errOut.String(), tc.want)
			}
		})
	}
}

func TestGoMemLimit(t *testing.T) {
	cases := map[string]struct {
		env  map[string]string
		want int64
		err  string
	}{
		"90% of the limit":       {env: map[string]string{"MEMORY_LIMIT": "536870912"}, want: 483183819},
		"GOMEMLIMIT wins":        {env: map[string]string{"MEMORY_LIMIT": "536870912", "GOMEMLIMIT": "100MiB"}},
		"no limit given":         {env: map[string]string{}},
		"a quantity, not bytes":  {env: map[string]string{"MEMORY_LIMIT": "512Mi"}, err: `MEMORY_LIMIT="512Mi": must be the container's memory limit in bytes, a positive integer`},
		"zero":                   {env: map[string]string{"MEMORY_LIMIT": "0"}, err: `MEMORY_LIMIT="0": must be`},
		"negative":               {env: map[string]string{"MEMORY_LIMIT": "-1"}, err: `MEMORY_LIMIT="-1": must be`},
		"overflowing":            {env: map[string]string{"MEMORY_LIMIT": "99999999999999999999"}, err: `MEMORY_LIMIT="99999999999999999999": must be`},
		"the largest int64 fits": {env: map[string]string{"MEMORY_LIMIT": "9223372036854775807"}, want: 9223372036854775807 / 10 * 9},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := goMemLimit(func(k string) string { return tc.env[k] })
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("goMemLimit = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}
