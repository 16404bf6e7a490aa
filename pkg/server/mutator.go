package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// Policies gives the effective policy of a namespace without an API call on the common path.
type Policies interface {
	For(ctx context.Context, namespace string) (*policy.Policy, error)
}

// Mutator answers mutating admission requests for the registered kinds.
type Mutator struct {
	// Kinds are the kinds handled; a request of another kind passes.
	Kinds    *mutate.Registry
	Policies Policies
	Metrics  *Metrics
	Log      logr.Logger
	// KueueServed reports whether Kueue's API is served; while it is not, a queued workload is
	// admitted with the KueueNotInstalled warning. Nil means served.
	KueueServed func() bool
}

var _ admission.Handler = (*Mutator)(nil)

// Handle decodes the request, runs the core and returns its patch and warnings. Bad objects are denied
// (403) or reported as bad requests (400); a policy it cannot resolve is 503, and so is every handled
// request before the policy index was first built (it would resolve to no policy). It answers 500 only if the
// patch cannot be encoded, which the Go types of the supported kinds rule out.
func (m *Mutator) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	kind := req.Kind.Kind
	m.Metrics.Requests.WithLabelValues(kind, string(req.Operation)).Inc()
	resp, result := m.handle(ctx, req)
	m.Metrics.Latency.WithLabelValues(kind, result).Observe(time.Since(start).Seconds())
	return resp
}

func (m *Mutator) handle(ctx context.Context, req admission.Request) (admission.Response, string) {
	k, ok := m.Kinds.For(schema.GroupVersionKind(req.Kind))
	switch {
	case !ok:
		return admission.Allowed("kind not handled by Kaiwo"), "skipped"
	case req.SubResource != "":
		return admission.Allowed("subresources pass"), "skipped"
	case req.Operation == admissionv1.Create:
	case req.Operation == admissionv1.Update && k.Update:
	default:
		// Job and RayJob templates are immutable after create; DELETE and CONNECT carry nothing to mutate.
		return admission.Allowed(""), "skipped"
	}
	pol, err := m.Policies.For(ctx, req.Namespace)
	if err != nil {
		m.Log.Error(err, "resolving policy", "namespace", req.Namespace)
		return admission.Errored(http.StatusServiceUnavailable, fmt.Errorf("kaiwo: cannot resolve the policy of namespace %q: %w", req.Namespace, err)), "error"
	}
	r := mutate.Request{Kind: k, Raw: req.Object.Raw, Policy: func(string) *policy.Policy { return pol }, User: req.UserInfo.Username, Stop: ctx.Err}
	if req.Operation == admissionv1.Update {
		// The stored object keeps the user label recorded at creation, and its record tells Kaiwo's
		// earlier values from the user's; the GPU limit holds growth.
		r.OldRaw = req.OldObject.Raw
	} else {
		r.Create = true // a record the new object brings is the user's text, not Kaiwo's
	}
	res, err := mutate.AdmitRequest(r)
	var denial *mutate.Denial
	switch {
	case ctx.Err() != nil:
		return m.gaveUp(ctx, req), "error"
	case errors.As(err, &denial):
		m.Metrics.Denials.WithLabelValues(k.GVK.Kind, denial.Reason).Inc()
		m.Log.V(1).Info("denied", "kind", k.GVK.Kind, "namespace", req.Namespace, "name", req.Name, "reason", denial.Reason, "policy", pol.Name)
		return admission.Denied(denial.Error()), "denied"
	case errors.Is(err, mutate.ErrEncodePatch):
		m.Log.Error(err, "encoding patch", "kind", k.GVK.Kind, "namespace", req.Namespace, "name", req.Name)
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("kaiwo: %w", err)), "error"
	case err != nil:
		m.Metrics.Denials.WithLabelValues(k.GVK.Kind, "bad-request").Inc()
		return admission.Errored(http.StatusBadRequest, err), "error"
	case !res.Managed:
		return admission.Allowed(""), "skipped"
	}
	for _, f := range res.Features {
		m.Metrics.Mutations.WithLabelValues(k.GVK.Kind, f).Inc()
		if f == featureQueue && m.KueueServed != nil && !m.KueueServed() {
			res.Warnings = append(res.Warnings, KueueNotInstalled)
		}
	}
	if len(res.Patch) == 0 {
		return admission.Allowed("").WithWarnings(res.Warnings...), "unchanged"
	}
	m.Log.V(1).Info("mutated", "kind", k.GVK.Kind, "namespace", req.Namespace, "name", req.Name, "operations", len(res.Patch), "policy", pol.Name, "dryRun", req.DryRun != nil && *req.DryRun)
	// The patch goes in encoded: admission.Patched would encode it again through each operation's MarshalJSON.
	resp := admission.Allowed("").WithWarnings(res.Warnings...)
	pt := admissionv1.PatchTypeJSONPatch
	resp.Patch, resp.PatchType = res.PatchJSON, &pt
	return resp, "mutated"
}
