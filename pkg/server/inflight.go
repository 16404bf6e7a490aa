package server

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// DefaultMaxInflight is how many admission requests (mutations and validations) run at once unless --max-inflight says otherwise: two per
// CPU the process may use, which keeps the CPUs busy while one request waits for the GC, and bounds
// the memory a burst can take to that many requests' worth.
func DefaultMaxInflight() int { return 2 * runtime.GOMAXPROCS(0) }

// MaxQueueWait bounds how long a request waits for a slot when its context has no deadline sooner: the
// API server gives up on the webhook at timeoutSeconds (5 s in our configurations), so an answer after
// that would be lost.
const MaxQueueWait = 4 * time.Second

// Throttle runs at most cap(slots) requests at once over every handler it bounds. The others wait in
// line until a slot frees, their context ends or MaxQueueWait passes; a request that gets no slot is
// answered 429.
type Throttle struct {
	Metrics *Metrics
	slots   chan struct{}
}

// NewThrottle allows n requests at once; n < 1 means DefaultMaxInflight.
func NewThrottle(n int, m *Metrics) *Throttle {
	if n < 1 {
		n = DefaultMaxInflight()
	}
	return &Throttle{Metrics: m, slots: make(chan struct{}, n)}
}

// Bound runs h within the throttle's slots.
func (t *Throttle) Bound(h admission.Handler) admission.Handler {
	return admission.HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
		select {
		case t.slots <- struct{}{}:
		default:
			wait := time.NewTimer(MaxQueueWait)
			defer wait.Stop()
			select {
			case t.slots <- struct{}{}:
			case <-ctx.Done():
				return t.reject(req, "its context ended first: "+context.Cause(ctx).Error())
			case <-wait.C:
				return t.reject(req, fmt.Sprintf("none freed within %v", MaxQueueWait))
			}
		}
		defer func() { <-t.slots }()
		return h.Handle(ctx, req)
	})
}

func (t *Throttle) reject(req admission.Request, why string) admission.Response {
	t.Metrics.Throttled.WithLabelValues(req.Kind.Kind).Inc()
	return admission.Errored(http.StatusTooManyRequests,
		fmt.Errorf("kaiwo: the webhook is busy: all %d request slots are taken and %s; try again", cap(t.slots), why))
}

// WithRequestTimeout gives each request's context the deadline the API server sends in the timeout query
// parameter (?timeout=5s, the webhook's timeoutSeconds), so that work stops when the API server has
// stopped waiting for it.
func WithRequestTimeout(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery == "" {
			h.ServeHTTP(w, r)
			return
		}
		if d, err := time.ParseDuration(r.URL.Query().Get("timeout")); err == nil && d > 0 {
			ctx, cancel := context.WithTimeout(r.Context(), d)
			defer cancel()
			r = r.WithContext(ctx)
		}
		h.ServeHTTP(w, r)
	})
}

// gaveUp answers a request whose context ended while it was being worked on; the API server no longer
// waits for the answer, but the log and the metrics say what happened.
func (m *Mutator) gaveUp(ctx context.Context, req admission.Request) admission.Response {
	err := context.Cause(ctx)
	m.Log.Info("stopped: the request's context ended", "kind", req.Kind.Kind, "namespace", req.Namespace, "name", req.Name, "error", err.Error())
	return admission.Errored(http.StatusServiceUnavailable, fmt.Errorf("kaiwo: stopped before an answer: %w", err))
}
