package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	. "github.com/silogen/kaiwo-webhook/internal/testobj"
	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
	"github.com/silogen/kaiwo-webhook/pkg/server"
	"github.com/silogen/kaiwo-webhook/pkg/typedpatch"
)

type fixedPolicy struct{ p *policy.Policy }

func (f fixedPolicy) For(context.Context, string) (*policy.Policy, error) { return f.p, nil }

type review struct {
	op          admissionv1.Operation
	obj         runtime.Object
	raw         string
	subResource string
	dryRun      bool
	// old is the stored object of an UPDATE; the object itself when empty.
	old string
}

func newHandler(t *testing.T) (http.Handler, *server.Metrics) {
	t.Helper()
	m := server.NewMetrics(prometheus.NewRegistry())
	return &webhook.Admission{Handler: &server.Mutator{Kinds: mutate.Builtin(), Policies: fixedPolicy{policy.Default()}, Metrics: m, Log: logr.Discard()}}, m
}

// send posts one AdmissionReview, as the API server does, and returns the response.
func send(t *testing.T, h http.Handler, r review) *admissionv1.AdmissionResponse {
	t.Helper()
	raw := []byte(r.raw)
	if r.obj != nil {
		raw, _ = json.Marshal(r.obj)
	}
	var tm metav1.TypeMeta
	_ = json.Unmarshal(raw, &tm)
	gvk := tm.GroupVersionKind()
	req := admissionv1.AdmissionRequest{
		UID:         types.UID("uid-1"),
		Kind:        metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
		Resource:    metav1.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: strings.ToLower(gvk.Kind) + "s"},
		SubResource: r.subResource,
		Namespace:   "ml",
		Name:        "x",
		Operation:   r.op,
		UserInfo:    authnv1.UserInfo{Username: "alice@example.com"},
		DryRun:      ptr.To(r.dryRun),
	}
	if r.op != admissionv1.Delete {
		req.Object = runtime.RawExtension{Raw: raw}
	} else {
		req.OldObject = runtime.RawExtension{Raw: raw}
	}
	if r.op == admissionv1.Update {
		req.OldObject = runtime.RawExtension{Raw: raw}
		if r.old != "" {
			req.OldObject = runtime.RawExtension{Raw: []byte(r.old)}
		}
	}
	body, _ := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  &req,
	})
	rec := httptest.NewRecorder()
	hr := httptest.NewRequest(http.MethodPost, "/mutate", bytes.NewReader(body))
	hr.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(rec, hr)
	if rec.Code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", rec.Code, rec.Body)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("decoding response: %v\n%s", err, rec.Body)
	}
	if out.Response == nil || out.Response.UID != "uid-1" {
		t.Fatalf("response without the request UID: %s", rec.Body)
	}
	return out.Response
}

func patchOps(t *testing.T, r *admissionv1.AdmissionResponse) []map[string]any {
	t.Helper()
	if len(r.Patch) == 0 {
		return nil
	}
	if r.PatchType == nil || *r.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Errorf("patchType = %v", r.PatchType)
	}
	var ops []map[string]any
	if err := json.Unmarshal(r.Patch, &ops); err != nil {
		t.Fatal(err)
	}
	return ops
}

func mutated(t *testing.T, obj runtime.Object) []byte {
	t.Helper()
	raw, _ := json.Marshal(obj)
	res, err := mutate.Builtin().Admit(raw, func(string) *policy.Policy { return policy.Default() }, "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	out, err := typedpatch.Apply(raw, res.Patch)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestHandlerPerKindAndOperation(t *testing.T) {
	job := MakeJob("j", "ml").Annotate(annotations.GPUs, "2").Obj()
	rayJob := MakeRayJob("r", "ml", "gpu").Annotate(annotations.GPUs, "16").Obj()
	rayService := MakeRayService("s", "ml", "gpu").Annotate(annotations.GPUs, "8").Obj()
	deployment := MakeDeployment("d", "ml").Annotate(annotations.GPUs, "1").Obj()
	cases := map[string]struct {
		r         review
		wantPatch bool
	}{
		"Job CREATE":                         {review{op: admissionv1.Create, obj: job}, true},
		"Job CREATE dry-run":                 {review{op: admissionv1.Create, obj: job, dryRun: true}, true},
		"Job UPDATE is not mutated":          {review{op: admissionv1.Update, obj: job}, false},
		"Job DELETE passes":                  {review{op: admissionv1.Delete, obj: job}, false},
		"RayJob CREATE":                      {review{op: admissionv1.Create, obj: rayJob}, true},
		"RayJob UPDATE is not mutated":       {review{op: admissionv1.Update, obj: rayJob}, false},
		"RayService CREATE":                  {review{op: admissionv1.Create, obj: rayService}, true},
		"RayService UPDATE":                  {review{op: admissionv1.Update, obj: rayService}, true},
		"Deployment CREATE":                  {review{op: admissionv1.Create, obj: deployment}, true},
		"Deployment UPDATE":                  {review{op: admissionv1.Update, obj: deployment}, true},
		"Deployment UPDATE, already mutated": {review{op: admissionv1.Update, raw: string(mutated(t, deployment))}, false},
		"Deployment scale subresource":       {review{op: admissionv1.Update, obj: deployment, subResource: "scale"}, false},
		"plain Job":                          {review{op: admissionv1.Create, obj: MakeJob("p", "ml").Obj()}, false},
		"ConfigMap":                          {review{op: admissionv1.Create, raw: `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}`}, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			h, _ := newHandler(t)
			resp := send(t, h, tc.r)
			if !resp.Allowed {
				t.Fatalf("denied: %v", resp.Result)
			}
			ops := patchOps(t, resp)
			if got := len(ops) > 0; got != tc.wantPatch {
				t.Fatalf("patch present = %v, want %v: %s", got, tc.wantPatch, resp.Patch)
			}
			for _, op := range ops {
				if op["op"] == "remove" {
					t.Errorf("patch removes %v", op["path"])
				}
			}
			if tc.wantPatch && len(resp.Warnings) == 0 {
				t.Error("a mutation without warnings")
			}
		})
	}
}

func TestHandlerDryRunGivesTheSamePatch(t *testing.T) {
	h, _ := newHandler(t)
	obj := MakeRayJob("r", "ml", "gpu").Annotate(annotations.GPUs, "16").Obj()
	wet := send(t, h, review{op: admissionv1.Create, obj: obj})
	dry := send(t, h, review{op: admissionv1.Create, obj: obj, dryRun: true})
	if !bytes.Equal(wet.Patch, dry.Patch) || len(wet.Patch) == 0 {
		t.Errorf("dry-run patch differs:\n%s\n%s", wet.Patch, dry.Patch)
	}
}

func TestHandlerDenials(t *testing.T) {
	cases := map[string]struct {
		r        review
		code     int32
		contains []string
	}{
		"bad annotation": {review{op: admissionv1.Create, obj: MakeJob("j", "ml").Annotate(annotations.GPUs, "lots").Obj()},
			http.StatusForbidden, []string{"kaiwo.silogen.ai/gpus", `"lots"`, "whole number"}},
		"RayJob on an existing cluster": {review{op: admissionv1.Create, obj: MakeRayJob("r", "ml", "w").ClusterSelector("ray.io/cluster", "c").Annotate(annotations.GPUs, "8").Obj()},
			http.StatusForbidden, []string{"spec.clusterSelector"}},
		"object that does not decode": {review{op: admissionv1.Create, raw: `{"apiVersion":"batch/v1","kind":"Job","metadata":{"annotations":{"kaiwo.silogen.ai/gpus":"1"}},"spec":{"parallelism":"many"}}`},
			http.StatusBadRequest, []string{"decoding Job"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			h, m := newHandler(t)
			resp := send(t, h, tc.r)
			if resp.Allowed || resp.Result == nil || resp.Result.Code != tc.code {
				t.Fatalf("allowed=%v result=%+v, want code %d", resp.Allowed, resp.Result, tc.code)
			}
			for _, s := range tc.contains {
				if !strings.Contains(resp.Result.Message, s) {
					t.Errorf("message %q lacks %q", resp.Result.Message, s)
				}
			}
			if len(resp.Patch) > 0 {
				t.Error("a denial carries a patch")
			}
			if n := testutil.CollectAndCount(m.Denials); n == 0 {
				t.Error("denial not counted")
			}
		})
	}
}

func TestHandlerBadBodyIsNot500(t *testing.T) {
	h, _ := newHandler(t)
	for name, body := range map[string]string{
		"not json":       `{"kind":`,
		"empty":          ``,
		"no request":     `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`,
		"wrong envelope": `{"apiVersion":"v1","kind":"Pod"}`,
	} {
		rec := httptest.NewRecorder()
		hr := httptest.NewRequest(http.MethodPost, "/mutate", strings.NewReader(body))
		hr.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(rec, hr)
		var out admissionv1.AdmissionReview
		if err := json.Unmarshal(rec.Body.Bytes(), &out); rec.Code >= 500 || err != nil || out.Response == nil ||
			(out.Response.Result != nil && out.Response.Result.Code >= 500) {
			t.Errorf("%s: HTTP %d, %s", name, rec.Code, rec.Body)
		}
	}
	// A bare Job with no Kaiwo keys passes untouched.
	resp := send(t, h, review{op: admissionv1.Create, raw: `{"apiVersion":"batch/v1","kind":"Job"}`})
	if !resp.Allowed || len(resp.Patch) > 0 {
		t.Fatalf("a Job with no Kaiwo keys must pass untouched: allowed=%v result=%+v patch=%s", resp.Allowed, resp.Result, resp.Patch)
	}
	// A Job request without its object is a bad request, not an allowed one.
	for _, raw := range [][]byte{nil, []byte("null")} {
		mut := &server.Mutator{Kinds: mutate.Builtin(), Policies: fixedPolicy{policy.Default()}, Metrics: server.NewMetrics(prometheus.NewRegistry()), Log: logr.Discard()}
		got := mut.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			UID: "uid-1", Kind: metav1.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"}, Namespace: "ml", Name: "x",
			Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw}}})
		if got.Allowed || got.Result == nil || got.Result.Code != http.StatusBadRequest {
			t.Errorf("a Job CREATE with object %q: allowed=%v result=%+v, want 400", raw, got.Allowed, got.Result)
		}
	}
}

func TestHandlerMetrics(t *testing.T) {
	h, m := newHandler(t)
	send(t, h, review{op: admissionv1.Create, obj: MakeJob("j", "ml").Annotate(annotations.GPUs, "1").Obj()})
	send(t, h, review{op: admissionv1.Create, obj: MakeJob("j", "ml").Annotate(annotations.GPUs, "1").Obj()})
	if got := testutil.ToFloat64(m.Requests.WithLabelValues("Job", "CREATE")); got != 2 {
		t.Errorf("requests = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.Mutations.WithLabelValues("Job", "gpus")); got != 2 {
		t.Errorf("gpus mutations = %v, want 2", got)
	}
	if n := testutil.CollectAndCount(m.Latency); n == 0 {
		t.Error("no latency observed")
	}
}
