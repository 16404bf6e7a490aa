package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sjson "sigs.k8s.io/json"

	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// WorkloadValidator answers the validating admission requests for workloads: it sees the final object,
// after every mutating webhook, and refuses what the policy does not allow. It never changes anything.
type WorkloadValidator struct {
	// Kinds are the kinds handled.
	Kinds    *mutate.Registry
	Policies Policies
	// Reader reads the object behind a scale request (a Deployment or StatefulSet). It is uncached (the
	// manager's API reader): scale-ups are rare, and a cache of every one would cost memory on every replica.
	Reader  client.Reader
	Metrics *Metrics
	Log     logr.Logger
}

var _ admission.Handler = (*WorkloadValidator)(nil)

// Handle validates CREATE and UPDATE of the handled kinds, scale-ups of Deployments and StatefulSets, and CREATE and
// UPDATE of the GPU-capable kinds not handled yet (on UPDATE also those a handled workload controls). A denial is 403 with the core's message; an object
// that does not decode is 400; a policy or Deployment it cannot read is 503.
func (v *WorkloadValidator) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	kind := requestKind(req)
	v.Metrics.Validation.Requests.WithLabelValues(kind, string(req.Operation)).Inc()
	resp, result := v.handle(ctx, req, kind)
	v.Metrics.Validation.Latency.WithLabelValues(kind, result).Observe(time.Since(start).Seconds())
	return resp
}

// requestKind names what a request is about for metrics: the object's kind, or for a subresource
// the resource and subresource (a scale request's kind is Scale, whatever it scales).
func requestKind(req admission.Request) string {
	if req.SubResource != "" {
		return req.Resource.Resource + "/" + req.SubResource
	}
	return req.Kind.Kind
}

func (v *WorkloadValidator) handle(ctx context.Context, req admission.Request, kind string) (admission.Response, string) {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed(""), "skipped"
	}
	gr := schema.GroupResource{Group: req.Resource.Group, Resource: req.Resource.Resource}
	switch {
	case req.SubResource == "scale":
		if k, ok := v.Kinds.ForResource(gr); ok && k.Scale {
			return v.scale(ctx, req, kind, k)
		}
		return admission.Allowed("subresource not validated by Kaiwo"), "skipped"
	case req.SubResource != "":
		return admission.Allowed("subresource not validated by Kaiwo"), "skipped"
	case v.unhandled(gr):
		if len(req.Object.Raw) == 0 {
			return v.badRequest(kind, fmt.Errorf("kaiwo: the %s request carries no object", kind))
		}
		if req.Operation == admissionv1.Update && len(req.OldObject.Raw) == 0 {
			return v.badRequest(kind, fmt.Errorf("kaiwo: UPDATE of %s %s/%s without the old object", kind, req.Namespace, req.Name))
		}
		pol, resp, ok := v.policy(ctx, req)
		if !ok {
			return resp, "error"
		}
		if req.Operation == admissionv1.Update {
			// An edit of an object a handled workload controls is held to that workload's rules.
			return v.decide(kind, req, pol, nil, v.Kinds.ValidateUnhandledUpdate(req.Object.Raw, req.OldObject.Raw, pol, req.UserInfo.Username))
		}
		return v.decide(kind, req, pol, nil, v.Kinds.ValidateUnhandledBy(req.Object.Raw, pol, req.UserInfo.Username))
	}
	k, ok := v.Kinds.For(schema.GroupVersionKind(req.Kind))
	if !ok {
		return admission.Allowed("kind not handled by Kaiwo"), "skipped"
	}
	if len(req.Object.Raw) == 0 {
		return v.badRequest(kind, fmt.Errorf("kaiwo: the %s request carries no object", kind))
	}
	r := mutate.Review{Operation: string(req.Operation), Kind: k, Raw: req.Object.Raw, User: req.UserInfo.Username}
	var err error
	if r.Object, err = k.Decode(req.Object.Raw); err != nil {
		return v.badRequest(kind, err)
	}
	if req.Operation == admissionv1.Update {
		// The API server always sends the old object on UPDATE; without it the rules about later
		// changes (queue, user label, growth) cannot be checked, so it is not guessed.
		if len(req.OldObject.Raw) == 0 {
			return v.badRequest(kind, fmt.Errorf("kaiwo: UPDATE of %s %s/%s without the old object", kind, req.Namespace, req.Name))
		}
		r.OldRaw = req.OldObject.Raw
		if r.Old, err = k.Decode(req.OldObject.Raw); err != nil {
			return v.badRequest(kind, fmt.Errorf("old object: %w", err))
		}
	}
	pol, resp, ok := v.policy(ctx, req)
	if !ok {
		return resp, "error"
	}
	r.Policy = pol
	warnings, err := mutate.Validate(r)
	return v.decide(kind, req, pol, warnings, err)
}

// scale checks a scale-up of an object of kind k (a Deployment or StatefulSet) against the policy; the Scale object says
// only the replicas, so the object is read for its pod template. A scale that does not grow passes unread.
func (v *WorkloadValidator) scale(ctx context.Context, req admission.Request, kind string, k mutate.Kind) (admission.Response, string) {
	replicas, err := scaleReplicas(req.Object.Raw)
	if err != nil {
		return v.badRequest(kind, err)
	}
	if len(req.OldObject.Raw) > 0 {
		if old, err := scaleReplicas(req.OldObject.Raw); err == nil && replicas <= old {
			return admission.Allowed(""), "skipped"
		}
	}
	obj, err := v.read(ctx, req, k)
	if err != nil {
		if apierrors.IsNotFound(err) {
			// The API server answers NotFound itself after admission; nothing to scale.
			return admission.Allowed(""), "skipped"
		}
		v.Log.Error(err, "reading the object of a scale request", "kind", k.GVK.Kind, "namespace", req.Namespace, "name", req.Name)
		return admission.Errored(http.StatusServiceUnavailable, fmt.Errorf("kaiwo: cannot read %s %s/%s to check its scale: %w", k.GVK.Kind, req.Namespace, req.Name, err)), "error"
	}
	pol, resp, ok := v.policy(ctx, req)
	if !ok {
		return resp, "error"
	}
	return v.decide(kind, req, pol, nil, mutate.ValidateScale(k, obj, replicas, pol))
}

// serverScheme is Scheme, built once.
var serverScheme = Scheme()

// read gets the object behind a scale request: typed when the server's scheme knows the kind (a
// Deployment), else as unstructured (a LeaderWorkerSet, a PyTorchJob: custom resources whose types the
// scheme does not carry) decoded into the kind's Go type.
func (v *WorkloadValidator) read(ctx context.Context, req admission.Request, k mutate.Kind) (client.Object, error) {
	key := client.ObjectKey{Namespace: req.Namespace, Name: req.Name}
	if serverScheme.Recognizes(k.GVK) {
		obj := k.New()
		if err := v.Reader.Get(ctx, key, obj); err != nil {
			return nil, err
		}
		obj.GetObjectKind().SetGroupVersionKind(k.GVK)
		return obj, nil
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(k.GVK)
	if err := v.Reader.Get(ctx, key, u); err != nil {
		return nil, err
	}
	raw, err := u.MarshalJSON()
	if err != nil {
		return nil, err
	}
	return k.Decode(raw)
}

// scaleReplicas reads spec.replicas of an autoscaling/v1 Scale.
func scaleReplicas(raw []byte) (int32, error) {
	if len(raw) == 0 {
		return 0, errors.New("kaiwo: the scale request carries no Scale object")
	}
	var s struct {
		Spec struct {
			Replicas *int32 `json:"replicas"`
		} `json:"spec"`
	}
	if err := sjson.UnmarshalCaseSensitivePreserveInts(raw, &s); err != nil {
		return 0, fmt.Errorf("kaiwo: decoding Scale: %w", err)
	}
	if s.Spec.Replicas == nil {
		return 0, nil // omitted: 0, as the API server decodes it (replicas is omitempty)
	}
	return *s.Spec.Replicas, nil
}

// unhandled reports whether gr is one of the GPU-capable kinds the webhook does not manage yet; in Enforce
// namespaces the core denies them when they ask for GPUs (Registry.ValidateUnhandled).
func (v *WorkloadValidator) unhandled(gr schema.GroupResource) bool {
	_, ok := v.Kinds.UnhandledFor(gr)
	return ok
}

func (v *WorkloadValidator) policy(ctx context.Context, req admission.Request) (*policy.Policy, admission.Response, bool) {
	pol, err := v.Policies.For(ctx, req.Namespace)
	if err != nil {
		v.Log.Error(err, "resolving policy", "namespace", req.Namespace)
		return nil, admission.Errored(http.StatusServiceUnavailable, fmt.Errorf("kaiwo: cannot resolve the policy of namespace %q: %w", req.Namespace, err)), false
	}
	return pol, admission.Response{}, true
}

// decide turns the core's answer into the response: a Denial is 403 with its message, any other
// error a bad request (400).
func (v *WorkloadValidator) decide(kind string, req admission.Request, pol *policy.Policy, warnings []string, err error) (admission.Response, string) {
	var denial *mutate.Denial
	switch {
	case errors.As(err, &denial):
		v.Metrics.Validation.Denials.WithLabelValues(kind, denial.Reason).Inc()
		v.Log.V(1).Info("denied", "kind", kind, "operation", req.Operation, "namespace", req.Namespace, "name", req.Name, "reason", denial.Reason, "policy", policyName(pol))
		return admission.Denied(denial.Error()).WithWarnings(warnings...), "denied"
	case err != nil:
		return v.badRequest(kind, err)
	}
	return admission.Allowed("").WithWarnings(warnings...), "allowed"
}

func (v *WorkloadValidator) badRequest(kind string, err error) (admission.Response, string) {
	v.Metrics.Validation.Denials.WithLabelValues(kind, "bad-request").Inc()
	return admission.Errored(http.StatusBadRequest, err), "error"
}

func policyName(p *policy.Policy) string {
	if p == nil {
		return policy.BuiltinName
	}
	return p.Name
}
