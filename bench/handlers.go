package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
	"github.com/silogen/kaiwo-webhook/pkg/server"
)

// IndexPolicies serves a policy.Index as the server's Policies, as the informer-fed IndexSync does
// on its common path (a cached namespace: one map lookup).
type IndexPolicies struct{ Index *policy.Index }

// For implements server.Policies.
func (p IndexPolicies) For(_ context.Context, namespace string) (*policy.Policy, error) {
	return p.Index.For(namespace), nil
}

// TeamIndex is an Index holding the bench policy and its namespace, team-ml.
func TeamIndex() (*policy.Index, error) {
	pols, _, err := policy.Load(strings.NewReader(string(PolicyYAML())))
	if err != nil {
		return nil, err
	}
	x := policy.NewIndex()
	x.SetPolicies(pols)
	x.SetNamespace(Namespace, map[string]string{"kaiwo.silogen.ai/team": "ml", "kubernetes.io/metadata.name": Namespace})
	if got := x.For(Namespace).Name; got != "team-ml" {
		return nil, fmt.Errorf("namespace %s resolves to policy %q, want team-ml", Namespace, got)
	}
	return x, nil
}

// kinds are the built-in kinds, as serve is given them.
var kinds = mutate.Builtin()

// kindOf is the kind of a typed object of one of kinds; the zero Kind, which Mutate refuses, otherwise.
func kindOf(obj client.Object) mutate.Kind {
	k, _ := kinds.ForObject(obj)
	return k
}

// Mutator is the production handler, as server.NewManager registers it at /mutate.
func Mutator(p server.Policies) http.Handler {
	m := server.NewMetrics(prometheus.NewRegistry())
	mutator := &server.Mutator{Kinds: kinds, Policies: p, Metrics: m, Log: logr.Discard()}
	return server.WithRequestTimeout(&webhook.Admission{Handler: server.NewThrottle(0, m).Bound(mutator)})
}

// Validator is the production workload validator, as server.NewManager registers it at /validate.
// It reads no Deployment here (no scale requests are sent), so it has no reader.
func Validator(p server.Policies) http.Handler {
	m := server.NewMetrics(prometheus.NewRegistry())
	return &webhook.Admission{Handler: &server.WorkloadValidator{Kinds: kinds, Policies: p, Metrics: m, Log: logr.Discard()}}
}

// Noop is the floor: a controller-runtime admission webhook that allows everything, unchanged.
func Noop() http.Handler {
	return &webhook.Admission{Handler: admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		return admission.Allowed("")
	})}
}

// Scheme knows the workload kinds, for the stock defaulter's decoder.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := rayv1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// Defaulter is the peer: controller-runtime's stock CustomDefaulter webhook (decode into the Go type,
// default in place, marshal, diff against the raw object) with the same mutation, the same policy
// lookup and the same user. It has no metrics and cannot return warnings, which the Mutator does.
func Defaulter(p server.Policies, kind string) (http.Handler, error) {
	objs := map[string]runtime.Object{
		"Job": &batchv1.Job{}, "Deployment": &appsv1.Deployment{}, "RayJob": &rayv1.RayJob{}, "RayService": &rayv1.RayService{},
	}
	obj, ok := objs[kind]
	if !ok {
		return nil, fmt.Errorf("no defaulter for kind %q", kind)
	}
	return admission.WithCustomDefaulter(Scheme(), obj, &defaulter{p}), nil
}

type defaulter struct{ policies server.Policies }

func (d *defaulter) Default(ctx context.Context, obj runtime.Object) error {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return err
	}
	pol, err := d.policies.For(ctx, req.Namespace)
	if err != nil {
		return err
	}
	out, err := mutate.Mutate(mutate.Input{Kind: kindOf(obj.(client.Object)), Object: obj.(client.Object), Raw: req.Object.Raw, Policy: pol, User: req.UserInfo.Username})
	if err != nil || !out.Managed {
		return err
	}
	reflect.ValueOf(obj).Elem().Set(reflect.ValueOf(out.Object).Elem())
	return nil
}

// Review is the AdmissionReview the API server posts for p: a CREATE, or for Update() payloads an
// UPDATE that carries the same object as the old one.
func Review(p Payload) []byte {
	gvk := map[string]metav1.GroupVersionKind{
		"Job":        {Group: "batch", Version: "v1", Kind: "Job"},
		"Deployment": {Group: "apps", Version: "v1", Kind: "Deployment"},
		"RayJob":     {Group: "ray.io", Version: "v1", Kind: "RayJob"},
		"RayService": {Group: "ray.io", Version: "v1", Kind: "RayService"},
	}[p.Kind]
	var meta struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(p.Raw, &meta)
	req := &admissionv1.AdmissionRequest{
		UID:       types.UID("705ab4f5-6393-11e8-b7cc-42010a800002"),
		Kind:      gvk,
		Resource:  metav1.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: strings.ToLower(gvk.Kind) + "s"},
		Namespace: Namespace,
		Name:      meta.Metadata.Name,
		Operation: admissionv1.Create,
		UserInfo:  authnv1.UserInfo{Username: User, Groups: []string{"system:authenticated", "team-ml"}},
		Object:    runtime.RawExtension{Raw: p.Raw},
		Options:   runtime.RawExtension{Raw: []byte(`{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1"}`)},
		DryRun:    new(bool),
	}
	req.RequestKind, req.RequestResource = &req.Kind, &req.Resource
	if p.Update() {
		req.Operation = admissionv1.Update
		req.OldObject = runtime.RawExtension{Raw: p.Raw}
		req.Options = runtime.RawExtension{Raw: []byte(`{"kind":"UpdateOptions","apiVersion":"meta.k8s.io/v1"}`)}
	}
	b, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  req,
	})
	if err != nil {
		panic(err) // plain data
	}
	return b
}
