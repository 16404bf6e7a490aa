package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	. "github.com/silogen/kaiwo-webhook/internal/testobj"
	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
	"github.com/silogen/kaiwo-webhook/pkg/server"
)

// teamML is the SPEC's team-ml policy: Enforce, queue, tolerations and nodeSelector locked,
// at most 32 GPUs per workload, amd only, queues team-ml and team-ml-low.
const teamML = `apiVersion: kaiwo.silogen.ai/v1alpha1
kind: KaiwoPolicy
metadata: {name: team-ml, generation: 1}
spec:
  priority: 10
  namespaceSelector: {matchLabels: {kaiwo.silogen.ai/team: ml}}
  mode: Enforce
  defaults:
    queue: team-ml
    gpuVendor: amd
    gpusPerNode: 8
    tolerations: [{key: amd.com/gpu, operator: Exists, effect: NoSchedule}]
    nodeSelector: {node-pool: gpu}
  limits:
    maxGpusPerWorkload: 32
    allowedVendors: [amd]
    allowedQueues: [team-ml, team-ml-low]
    allowedSecrets: ["hf-token", "team-ml-*"]
  locked: [queue, tolerations, nodeSelector]
`

func teamPolicy(t *testing.T) *policy.Policy {
	t.Helper()
	pols, _, err := policy.Load(strings.NewReader(teamML))
	if err != nil {
		t.Fatal(err)
	}
	c, errs := policy.Compile(&pols[0], policy.Flavors{}.Lookup)
	if len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	return c.Policy()
}

// reader serves Deployments from a map and counts its reads; err fails every read.
type reader struct {
	client.Reader
	objs  map[string]*appsv1.Deployment
	err   error
	reads int
}

func (r *reader) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	r.reads++
	if r.err != nil {
		return r.err
	}
	d, ok := r.objs[key.Name]
	if !ok {
		return apierrors.NewNotFound(schema.GroupResource{Group: "apps", Resource: "deployments"}, key.Name)
	}
	d.DeepCopyInto(obj.(*appsv1.Deployment))
	return nil
}

type failingPolicies struct{}

func (failingPolicies) For(context.Context, string) (*policy.Policy, error) {
	return nil, errors.New("informer not synced")
}

type validator struct {
	h       http.Handler
	metrics *server.Metrics
	reader  *reader
}

func newValidator(t *testing.T, pols server.Policies, deps ...*appsv1.Deployment) *validator {
	t.Helper()
	m := server.NewMetrics(prometheus.NewRegistry())
	r := &reader{objs: map[string]*appsv1.Deployment{}}
	for _, d := range deps {
		r.objs[d.Name] = d
	}
	return &validator{
		h:       &webhook.Admission{Handler: &server.WorkloadValidator{Kinds: mutate.Builtin(), Policies: pols, Reader: r, Metrics: m, Log: logr.Discard()}},
		metrics: m, reader: r,
	}
}

// vreq is one validating request; kind and resource default from the object's apiVersion and kind.
type vreq struct {
	op          admissionv1.Operation
	obj, old    any // runtime.Object, string (raw JSON) or nil
	kind        *metav1.GroupVersionKind
	resource    *metav1.GroupVersionResource
	subResource string
	name        string
}

func rawOf(t *testing.T, v any) []byte {
	t.Helper()
	switch v := v.(type) {
	case nil:
		return nil
	case string:
		return []byte(v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

func (v *validator) send(t *testing.T, r vreq) *admissionv1.AdmissionResponse {
	t.Helper()
	raw, old := rawOf(t, r.obj), rawOf(t, r.old)
	var tm metav1.TypeMeta
	_ = json.Unmarshal(raw, &tm)
	gvk := tm.GroupVersionKind()
	req := admissionv1.AdmissionRequest{
		UID:         "uid-v",
		Kind:        metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
		Resource:    metav1.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: strings.ToLower(gvk.Kind) + "s"},
		SubResource: r.subResource,
		Namespace:   "team-ml",
		Name:        r.name,
		Operation:   r.op,
		UserInfo:    authnv1.UserInfo{Username: "alice@example.com"},
		Object:      runtime.RawExtension{Raw: raw},
		OldObject:   runtime.RawExtension{Raw: old},
	}
	if r.kind != nil {
		req.Kind = *r.kind
	}
	if r.resource != nil {
		req.Resource = *r.resource
	}
	body, _ := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  &req,
	})
	rec := httptest.NewRecorder()
	hr := httptest.NewRequest(http.MethodPost, server.ValidatePath, bytes.NewReader(body))
	hr.Header.Set("Content-Type", "application/json")
	v.h.ServeHTTP(rec, hr)
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); rec.Code != http.StatusOK || err != nil || out.Response == nil || out.Response.UID != "uid-v" {
		t.Fatalf("HTTP %d: %s (%v)", rec.Code, rec.Body, err)
	}
	if len(out.Response.Patch) > 0 {
		t.Errorf("a validating response carries a patch: %s", out.Response.Patch)
	}
	return out.Response
}

var (
	scaleKind     = &metav1.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}
	deploymentsGR = &metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
)

func scaleObj(n int32) string {
	b, _ := json.Marshal(map[string]any{"apiVersion": "autoscaling/v1", "kind": "Scale",
		"metadata": map[string]any{"name": "serve", "namespace": "team-ml"}, "spec": map[string]any{"replicas": n}})
	return string(b)
}

func scaleReq(from, to int32) vreq {
	return vreq{op: admissionv1.Update, obj: scaleObj(to), old: scaleObj(from), kind: scaleKind, resource: deploymentsGR, subResource: "scale", name: "serve"}
}

func wantCode(t *testing.T, resp *admissionv1.AdmissionResponse, code int32, contains ...string) {
	t.Helper()
	if resp.Allowed || resp.Result == nil || resp.Result.Code != code {
		t.Fatalf("allowed=%v result=%+v, want code %d", resp.Allowed, resp.Result, code)
	}
	for _, s := range contains {
		if !strings.Contains(resp.Result.Message, s) {
			t.Errorf("message %q lacks %q", resp.Result.Message, s)
		}
	}
}

func TestValidatorBadRequests(t *testing.T) {
	job := MakeJob("j", "team-ml").Annotate(annotations.GPUs, "1").Obj()
	undecodable := `{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j"},"spec":{"parallelism":"many"}}`
	cases := map[string]struct {
		r        vreq
		contains []string
	}{
		"object that does not decode":     {vreq{op: admissionv1.Create, obj: undecodable}, []string{"decoding Job"}},
		"UPDATE without the old object":   {vreq{op: admissionv1.Update, obj: job}, []string{"without the old object"}},
		"old object that does not decode": {vreq{op: admissionv1.Update, obj: job, old: undecodable}, []string{"old object", "decoding Job"}},
		"Scale with a string replicas": {vreq{op: admissionv1.Update, obj: `{"apiVersion":"autoscaling/v1","kind":"Scale","spec":{"replicas":"100"}}`,
			kind: scaleKind, resource: deploymentsGR, subResource: "scale", name: "serve"}, []string{"decoding Scale"}},
		"scale request without a Scale": {vreq{op: admissionv1.Update, kind: scaleKind, resource: deploymentsGR, subResource: "scale", name: "serve"}, []string{"no Scale"}},
		"Pod request without its object": {vreq{op: admissionv1.Create, kind: &metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			resource: &metav1.GroupVersionResource{Version: "v1", Resource: "pods"}}, []string{"carries no object"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			v := newValidator(t, fixedPolicy{teamPolicy(t)})
			wantCode(t, v.send(t, tc.r), http.StatusBadRequest, tc.contains...)
			if v.reader.reads != 0 {
				t.Errorf("%d Deployment reads for a bad request", v.reader.reads)
			}
			if n := testutil.CollectAndCount(v.metrics.Validation.Denials); n == 0 {
				t.Error("bad request not counted")
			}
		})
	}
}

func TestValidatorPassesWhatItDoesNotCheck(t *testing.T) {
	job := MakeJob("j", "team-ml").Annotate(annotations.GPUs, "1").Obj()
	cases := map[string]vreq{
		"DELETE":             {op: admissionv1.Delete, old: job},
		"status subresource": {op: admissionv1.Update, obj: job, old: job, subResource: "status"},
		"ConfigMap":          {op: admissionv1.Create, obj: `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}`},
		"scale down":         scaleReq(100, 1),
		"scale unchanged":    scaleReq(4, 4),
		"scale of another resource": {op: admissionv1.Update, obj: scaleObj(100), old: scaleObj(1), kind: scaleKind,
			resource: &metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"}, subResource: "scale", name: "serve"},
		"scale of a Deployment that is gone": scaleReq(1, 100),
	}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			v := newValidator(t, fixedPolicy{teamPolicy(t)})
			if resp := v.send(t, r); !resp.Allowed {
				t.Fatalf("denied: %+v", resp.Result)
			}
			if want := map[bool]int{true: 1}[name == "scale of a Deployment that is gone"]; v.reader.reads != want {
				t.Errorf("%d Deployment reads, want %d", v.reader.reads, want)
			}
		})
	}
}

func TestValidatorUnavailable(t *testing.T) {
	dep := MakeDeployment("serve", "team-ml").Resource(0, "amd.com/gpu", "8").Obj()
	t.Run("policy", func(t *testing.T) {
		v := newValidator(t, failingPolicies{}, dep)
		for _, r := range []vreq{{op: admissionv1.Create, obj: MakeJob("j", "team-ml").Annotate(annotations.GPUs, "1").Obj()}, scaleReq(1, 2)} {
			wantCode(t, v.send(t, r), http.StatusServiceUnavailable, "team-ml", "informer not synced")
		}
	})
	t.Run("Deployment read", func(t *testing.T) {
		v := newValidator(t, fixedPolicy{teamPolicy(t)}, dep)
		v.reader.err = errors.New("connection refused")
		wantCode(t, v.send(t, scaleReq(1, 2)), http.StatusServiceUnavailable, "team-ml/serve", "connection refused")
	})
}

func TestValidatorMetrics(t *testing.T) {
	dep := MakeDeployment("serve", "team-ml").Obj()
	v := newValidator(t, fixedPolicy{teamPolicy(t)}, dep)
	v.send(t, vreq{op: admissionv1.Create, obj: MakeJob("j", "team-ml").Annotate(annotations.GPUs, "1").Obj()})
	v.send(t, scaleReq(1, 2))
	v.send(t, scaleReq(2, 1))
	if got := testutil.ToFloat64(v.metrics.Validation.Requests.WithLabelValues("Job", "CREATE")); got != 1 {
		t.Errorf("Job CREATE requests = %v, want 1", got)
	}
	if got := testutil.ToFloat64(v.metrics.Validation.Requests.WithLabelValues("deployments/scale", "UPDATE")); got != 2 {
		t.Errorf("deployments/scale requests = %v, want 2", got)
	}
	if got := testutil.ToFloat64(v.metrics.Requests.WithLabelValues("Job", "CREATE")); got != 0 {
		t.Errorf("the validator counted in the Mutator's requests: %v", got)
	}
	if n := testutil.CollectAndCount(v.metrics.Validation.Latency); n < 2 {
		t.Errorf("latency observed for %d results, want allowed and skipped", n)
	}
}
