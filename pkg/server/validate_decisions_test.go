package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"

	. "github.com/silogen/kaiwo-webhook/internal/testobj"
	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
	"github.com/silogen/kaiwo-webhook/pkg/typedpatch"
)

// mutatedFor is obj as the mutating webhook leaves it under pol, for user: what the validator sees.
func mutatedFor(t *testing.T, obj runtime.Object, pol *policy.Policy, user string) map[string]any {
	t.Helper()
	raw, _ := json.Marshal(obj)
	res, err := mutate.Builtin().Admit(raw, func(string) *policy.Policy { return pol }, user)
	if err != nil {
		t.Fatal(err)
	}
	out, err := typedpatch.Apply(raw, res.Patch)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// with returns a deep copy of obj with the value at path (keys) set; nil deletes it.
func with(obj map[string]any, v any, path ...string) map[string]any {
	b, _ := json.Marshal(obj)
	var c map[string]any
	_ = json.Unmarshal(b, &c)
	m := c
	for _, k := range path[:len(path)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	if v == nil {
		delete(m, path[len(path)-1])
	} else {
		m[path[len(path)-1]] = v
	}
	return c
}

// TestValidatorDecisions: the team-ml attacks through the handler, each refused with the core's
// message naming the field and the rule, and the changes the policy allows.
func TestValidatorDecisions(t *testing.T) {
	pol := teamPolicy(t)
	job := mutatedFor(t, MakeJob("train", "team-ml").Annotate(annotations.GPUs, "8").Obj(), pol, "alice@example.com")
	labels := []string{"metadata", "labels"}
	queueLabel := append(labels, annotations.KueueQueueName)
	userLabel := append(labels, annotations.User)
	gpuDep := MakeDeployment("serve", "team-ml").Annotate(annotations.GPUs, "8").Obj()
	dep := mutatedFor(t, gpuDep, pol, "alice@example.com")
	var stored appsv1.Deployment
	b, _ := json.Marshal(dep)
	_ = json.Unmarshal(b, &stored)
	pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"team-ml"},"spec":{"containers":[{"name":"c","image":"x","resources":{"limits":{"amd.com/gpu":"8"}}}]}}`
	cases := map[string]struct {
		r        vreq
		contains []string // empty: allowed
	}{
		"the mutated Job, CREATE":     {vreq{op: admissionv1.Create, obj: job}, nil},
		"queueing none on CREATE":     {vreq{op: admissionv1.Create, obj: mutatedFor(t, MakeJob("x", "team-ml").Obj(), pol, "alice@example.com")}, nil},
		"user label of another user":  {vreq{op: admissionv1.Create, obj: with(job, "bob", userLabel...)}, []string{annotations.User, "bob"}},
		"queue moved outside allowed": {vreq{op: admissionv1.Update, obj: with(job, "other", queueLabel...), old: job}, []string{annotations.KueueQueueName, "other"}},
		"queue moved within, locked":  {vreq{op: admissionv1.Update, obj: with(job, "team-ml-low", queueLabel...), old: job}, []string{annotations.KueueQueueName, "locked"}},
		"queue removed with the keys": {vreq{op: admissionv1.Update, obj: with(with(with(job, nil, queueLabel...), nil, append(labels, annotations.Managed)...), nil, "metadata", "annotations"), old: job},
			[]string{annotations.KueueQueueName}},
		"user label rewritten":         {vreq{op: admissionv1.Update, obj: with(job, "bob", userLabel...), old: job}, []string{annotations.User, "immutable"}},
		"parallelism beyond the limit": {vreq{op: admissionv1.Update, obj: with(job, 5, "spec", "parallelism"), old: job}, []string{"maxGpusPerWorkload"}},
		"parallelism that overflows":   {vreq{op: admissionv1.Update, obj: with(job, 2147483647, "spec", "parallelism"), old: job}, []string{"maxGpusPerWorkload"}},
		"parallelism within the limit": {vreq{op: admissionv1.Update, obj: with(job, 4, "spec", "parallelism"), old: job}, nil},
		"an unrelated label":           {vreq{op: admissionv1.Update, obj: with(job, "x", append(labels, "app")...), old: job}, nil},
		"Deployment replicas past it":  {vreq{op: admissionv1.Update, obj: with(dep, 5, "spec", "replicas"), old: dep}, []string{"maxGpusPerWorkload"}},
		"bare GPU Pod not mutated":     {vreq{op: admissionv1.Create, obj: pod}, []string{annotations.User, "alice-example.com"}},
		"GPU Pod with a Job's owner reference, created by a team user": {vreq{op: admissionv1.Create, obj: strings.Replace(pod, `"namespace":"team-ml"`, `"namespace":"team-ml","ownerReferences":[{"apiVersion":"batch/v1","kind":"Job","name":"j","uid":"u","controller":true}]`, 1)},
			[]string{"Enforce", "exempts it only when a controller makes the request", "alice@example.com"}},
		// StatefulSets and CronJobs are handled: one the mutating webhook did not see lacks what it sets.
		"GPU StatefulSet not mutated": {vreq{op: admissionv1.Create, obj: unhandledObj("apps/v1", "StatefulSet", `"template":`+gpuTemplate)}, []string{annotations.User, "alice-example.com"}},
		"plain StatefulSet UPDATE to GPUs": {vreq{op: admissionv1.Update, obj: unhandledObj("apps/v1", "StatefulSet", `"template":`+gpuTemplate),
			old: unhandledObj("apps/v1", "StatefulSet", `"template":{"spec":{"containers":[{"name":"c","image":"x"}]}}`)}, []string{"nvidia", "allowedVendors"}},
		"GPU CronJob not mutated": {vreq{op: admissionv1.Create, obj: unhandledObj("batch/v1", "CronJob", `"schedule":"@daily","jobTemplate":{"spec":{"template":`+gpuTemplate+`}}`)}, []string{annotations.User, "alice-example.com"}},
		// A RayCluster is handled: one the mutating webhook did not see lacks what it records.
		"GPU RayCluster not mutated": {vreq{op: admissionv1.Create, obj: unhandledObj("ray.io/v1", "RayCluster", `"headGroupSpec":{"template":`+gpuTemplate+`}`)}, []string{annotations.User}},
		"RayCluster a RayJob controls, created by a team user": {vreq{op: admissionv1.Create, obj: controlledCluster(1)},
			[]string{"ray.io/v1 RayCluster is a part of a ray.io/v1 RayJob", "exempts it only when a controller makes the request", "alice@example.com"}},
		"RayCluster a RayJob controls, created by KubeRay":  {vreq{op: admissionv1.Create, obj: controlledCluster(1), user: "system:serviceaccount:ray-system:kuberay-operator"}, nil},
		"Job of a JobSet, created by the JobSet controller": {vreq{op: admissionv1.Create, obj: jobSetJob(1), user: "system:serviceaccount:jobset-system:jobset-controller-manager"}, nil},
		"Job of a JobSet, created by a team user": {vreq{op: admissionv1.Create, obj: jobSetJob(1)},
			[]string{"batch/v1 Job is a part of a jobset.x-k8s.io/v1alpha2 JobSet", "exempts it only when a controller makes the request"}},
		"Job of a JobSet, parallelism grown by a team user": {vreq{op: admissionv1.Update, obj: jobSetJob(5), old: jobSetJob(1)},
			[]string{"spec.parallelism=5", "maxGpusPerWorkload"}},
		"RayCluster a RayJob controls, workers grown by its user": {vreq{op: admissionv1.Update, obj: controlledCluster(5), old: controlledCluster(1)},
			[]string{"spec.workerGroupSpecs[0].replicas=5", "maxGpusPerWorkload"}},
		"RayCluster a RayJob controls, workers shrunk": {vreq{op: admissionv1.Update, obj: controlledCluster(1), old: controlledCluster(4)}, nil},
		"scale of the GPU Deployment":                  {scaleReq(1, 100), []string{"maxGpusPerWorkload"}},
		"scale to 2^31-1":                              {scaleReq(1, 2147483647), []string{"maxGpusPerWorkload"}},
		"scale within the limit":                       {scaleReq(1, 4), nil},
		"scale 2 to 3 (24 GPUs)":                       {scaleReq(2, 3), nil},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			v := newValidator(t, fixedPolicy{pol}, &stored)
			resp := v.send(t, tc.r)
			if len(tc.contains) == 0 {
				if !resp.Allowed {
					t.Fatalf("denied: %+v", resp.Result)
				}
				return
			}
			wantCode(t, resp, http.StatusForbidden, tc.contains...)
			if n := testutil.CollectAndCount(v.metrics.Validation.Denials); n != 1 {
				t.Errorf("%d denial series, want 1", n)
			}
		})
	}
}

const gpuTemplate = `{"spec":{"containers":[{"name":"c","image":"x","resources":{"limits":{"nvidia.com/gpu":"1"}}}]}}`

// jobSetJob is a Job a JobSet controls, of parallelism pods of 8 AMD GPUs.
func jobSetJob(parallelism int) string {
	return fmt.Sprintf(`{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j","namespace":"team-ml","ownerReferences":[{"apiVersion":"jobset.x-k8s.io/v1alpha2","kind":"JobSet","name":"s","uid":"u","controller":true}]},`+
		`"spec":{"parallelism":%d,"template":{"spec":{"restartPolicy":"Never","containers":[{"name":"c","image":"x","resources":{"limits":{"amd.com/gpu":"8"}}}]}}}}`, parallelism)
}

// controlledCluster is a RayCluster a RayJob controls, with workers of 8 AMD GPUs.
func controlledCluster(workers int) string {
	return fmt.Sprintf(`{"apiVersion":"ray.io/v1","kind":"RayCluster","metadata":{"name":"r","namespace":"team-ml","ownerReferences":[{"apiVersion":"ray.io/v1","kind":"RayJob","name":"r","uid":"u","controller":true}]},`+
		`"spec":{"headGroupSpec":{"template":{"spec":{"containers":[{"name":"h","image":"x"}]}}},"workerGroupSpecs":[{"groupName":"w","replicas":%d,"template":{"spec":{"containers":[{"name":"w","image":"x","resources":{"limits":{"amd.com/gpu":"8"}}}]}}}]}}`, workers)
}

// unhandledObj is an object of a kind Kaiwo does not handle yet, with the given spec fields.
func unhandledObj(apiVersion, kind, spec string) string {
	return `{"apiVersion":"` + apiVersion + `","kind":"` + kind + `","metadata":{"name":"x","namespace":"team-ml"},"spec":{` + spec + `}}`
}
