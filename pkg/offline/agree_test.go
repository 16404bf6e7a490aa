package offline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/offline"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
	"github.com/silogen/kaiwo-webhook/pkg/server"
	"github.com/silogen/kaiwo-webhook/pkg/typedpatch"
)

type defaultPolicy struct{}

func (defaultPolicy) For(context.Context, string) (*policy.Policy, error) {
	return policy.Default(), nil
}

// jobWith is a Job in namespace ml whose metadata and spec are spliced in as JSON.
func jobWith(apiVersion, annotations, spec string) string {
	return `{"apiVersion":"` + apiVersion + `","kind":"Job","metadata":{"name":"x","namespace":"ml","annotations":{` + annotations +
		`}},"spec":{` + spec + `"template":{"spec":{"restartPolicy":"Never","containers":[{"name":"main","image":"busybox"}]}}}}`
}

// TestOfflineAgreesWithServe runs `mutate -f`'s path (offline.Run) and serve's Mutator.Handle on the same
// raw object: where serve refuses it, offline fails with serve's message; where serve admits it, offline
// prints the object with serve's patch applied.
func TestOfflineAgreesWithServe(t *testing.T) {
	job := metav1.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"}
	rayJob := metav1.GroupVersionKind{Group: "ray.io", Version: "v1", Kind: "RayJob"}
	cases := map[string]struct {
		raw string
		// kind is what the API server names in the request (the resource the rule matched).
		kind    metav1.GroupVersionKind
		allowed bool
	}{
		"a valid Job (control)":               {raw: jobWith("batch/v1", `"kaiwo.silogen.ai/gpus":"1"`, ""), kind: job, allowed: true},
		"not an object: a list":               {raw: `[1, 2]`, kind: job},
		"not an object: a string":             {raw: `"job"`, kind: job},
		"wrong type of a spec field":          {raw: jobWith("batch/v1", `"kaiwo.silogen.ai/gpus":"1"`, `"parallelism":"two",`), kind: job},
		"wrong type of the name":              {raw: `{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":5,"namespace":"ml"}}`, kind: job},
		"wrong type of an annotation":         {raw: jobWith("batch/v1", `"kaiwo.silogen.ai/gpus":1`, ""), kind: job},
		"a duplicate key":                     {raw: jobWith("batch/v1", `"kaiwo.silogen.ai/gpus":"1"`, `"parallelism":1,"parallelism":2,`), kind: job},
		"an unknown kaiwo key":                {raw: jobWith("batch/v1", `"kaiwo.silogen.ai/gpuz":"1"`, ""), kind: job},
		"a bad annotation value":              {raw: jobWith("batch/v1", `"kaiwo.silogen.ai/gpus":"-1"`, ""), kind: job},
		"an overflowing annotation value":     {raw: jobWith("batch/v1", `"kaiwo.silogen.ai/gpus":"99999999999999999999"`, ""), kind: job},
		"too large":                           {raw: jobWith("batch/v1", `"kaiwo.silogen.ai/gpus":"1","note":"`+strings.Repeat("x", mutate.MaxObjectBytes)+`"`, ""), kind: job},
		"an unsupported apiVersion of Job":    {raw: jobWith("batch/v2", `"kaiwo.silogen.ai/gpus":"1"`, ""), kind: job},
		"an unsupported apiVersion of RayJob": {raw: `{"apiVersion":"ray.io/v1alpha1","kind":"RayJob","metadata":{"name":"x","namespace":"ml","annotations":{"kaiwo.silogen.ai/gpus":"1"}},"spec":{"entrypoint":"python x.py"}}`, kind: rayJob},
	}
	mutator := &server.Mutator{Kinds: mutate.Builtin(), Policies: defaultPolicy{}, Metrics: server.NewMetrics(prometheus.NewRegistry()), Log: logr.Discard()}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			resp := mutator.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
				UID: "uid", Kind: tc.kind, Namespace: "ml", Name: "x", Operation: admissionv1.Create,
				UserInfo: authnv1.UserInfo{Username: "alice@example.com"}, Object: runtime.RawExtension{Raw: []byte(tc.raw)},
			}})
			docs, err := offline.Run(strings.NewReader(tc.raw), offline.Options{User: "alice@example.com"})
			if resp.Allowed != tc.allowed {
				t.Fatalf("serve: allowed = %v, want %v (%v)", resp.Allowed, tc.allowed, resp.Result)
			}
			if !resp.Allowed {
				msg := resp.Result.Message
				if msg == "" || err == nil || !strings.Contains(err.Error(), msg) {
					t.Fatalf("serve refused with %d %q; mutate -f: %v, want an error with that message", resp.Result.Code, msg, err)
				}
				return
			}
			if err != nil || len(docs) != 1 {
				t.Fatalf("serve admitted it; mutate -f: %d documents, error %v", len(docs), err)
			}
			var ops []jsonpatch.Operation // serve's patch, as the API server gets it
			if len(resp.Patch) > 0 {
				if err := json.Unmarshal(resp.Patch, &ops); err != nil {
					t.Fatal(err)
				}
			}
			want, err := typedpatch.Apply([]byte(tc.raw), ops)
			if err != nil {
				t.Fatal(err)
			}
			got, err := sigsyaml.YAMLToJSON(docs[0].Output)
			if err != nil {
				t.Fatal(err)
			}
			if !jsonEqual(t, got, want) {
				t.Errorf("mutate -f printed\n%s\nwant serve's result\n%s", got, want)
			}
		})
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

// TestYAMLDuplicateKey: a key given twice in YAML is refused, as kubectl refuses it, never silently
// resolved to one of the two values.
func TestYAMLDuplicateKey(t *testing.T) {
	doc := "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: x\n  annotations:\n    kaiwo.silogen.ai/gpus: \"1\"\n    kaiwo.silogen.ai/gpus: \"8\"\nspec:\n  template:\n    spec:\n      containers: [{name: main, image: busybox}]\n"
	if _, err := offline.Run(strings.NewReader(doc), offline.Options{}); err == nil || !strings.Contains(err.Error(), `"kaiwo.silogen.ai/gpus" already set`) {
		t.Errorf("Run = %v, want an error naming the duplicate key", err)
	}
}
