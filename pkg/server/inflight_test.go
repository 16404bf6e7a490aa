package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/silogen/kaiwo-webhook/internal/shapes"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
	"github.com/silogen/kaiwo-webhook/pkg/server"
)

// blocking is a handler that holds each request until release is closed.
type blocking struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blocking) Handle(context.Context, admission.Request) admission.Response {
	b.entered <- struct{}{}
	<-b.release
	return admission.Allowed("")
}

func jobRequest() admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Kind:      metav1.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"},
		Namespace: "ml", Name: "j", Operation: admissionv1.Create,
		Object: runtime.RawExtension{Raw: []byte(`{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j","namespace":"ml","annotations":{"kaiwo.silogen.ai/gpus":"1"}},` +
			`"spec":{"template":{"spec":{"restartPolicy":"Never","containers":[{"name":"c","image":"busybox"}]}}}}`)},
	}}
}

// TestThrottleQueuesThenRejects: with every slot taken, a request waits; one whose context ends first
// is answered 429 and counted, and once a slot frees the next request runs.
func TestThrottleQueuesThenRejects(t *testing.T) {
	m := server.NewMetrics(prometheus.NewRegistry())
	b := &blocking{entered: make(chan struct{}, 2), release: make(chan struct{})}
	th := server.NewThrottle(1, m).Bound(b)

	done := make(chan admission.Response)
	go func() { done <- th.Handle(context.Background(), jobRequest()) }()
	<-b.entered // the only slot is taken

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	resp := th.Handle(ctx, jobRequest())
	if resp.Allowed || resp.Result.Code != http.StatusTooManyRequests || !strings.Contains(resp.Result.Message, "all 1 request slots are taken") {
		t.Errorf("queued past its deadline: allowed=%v code=%d %q; want a 429 that says the slots are taken", resp.Allowed, resp.Result.Code, resp.Result.Message)
	}
	if got := testutil.ToFloat64(m.Throttled.WithLabelValues("Job")); got != 1 {
		t.Errorf("kaiwo_webhook_throttled_total{kind=Job} = %v, want 1", got)
	}

	waiting := make(chan admission.Response)
	go func() { waiting <- th.Handle(context.Background(), jobRequest()) }()
	close(b.release) // the first finishes; the waiting one gets its slot
	if r := <-done; !r.Allowed {
		t.Errorf("first request: %v", r.Result)
	}
	<-b.entered
	if r := <-waiting; !r.Allowed {
		t.Errorf("queued request: %v", r.Result)
	}
}

// TestThrottleIsSharedByEveryHandlerItBounds: a burst of validations cannot get around the bound by
// arriving while mutations hold the slots: handlers bound by one throttle share its slots.
func TestThrottleIsSharedByEveryHandlerItBounds(t *testing.T) {
	m := server.NewMetrics(prometheus.NewRegistry())
	throttle := server.NewThrottle(1, m)
	mutating := &blocking{entered: make(chan struct{}, 1), release: make(chan struct{})}
	validating := &blocking{entered: make(chan struct{}, 1), release: make(chan struct{})}
	mutate, validate := throttle.Bound(mutating), throttle.Bound(validating)

	done := make(chan admission.Response)
	go func() { done <- mutate.Handle(context.Background(), jobRequest()) }()
	<-mutating.entered // the mutation holds the only slot

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if resp := validate.Handle(ctx, jobRequest()); resp.Allowed || resp.Result.Code != http.StatusTooManyRequests {
		t.Errorf("a validation while a mutation held the only slot: allowed=%v code=%d; want a 429", resp.Allowed, resp.Result.Code)
	}
	close(mutating.release)
	<-done
	close(validating.release)
	if resp := validate.Handle(context.Background(), jobRequest()); !resp.Allowed {
		t.Errorf("a validation with the slot free: %v", resp.Result)
	}
}

// TestMutatorStopsWhenContextEnds: a request whose context has ended is answered with an error, not
// mutated.
func TestMutatorStopsWhenContextEnds(t *testing.T) {
	m := server.NewMetrics(prometheus.NewRegistry())
	mu := &server.Mutator{Kinds: mutate.Builtin(), Policies: fixedPolicy{policy.Default()}, Metrics: m, Log: logr.Discard()}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	resp := mu.Handle(ctx, jobRequest())
	if resp.Allowed || len(resp.Patch) > 0 || resp.Result.Code != http.StatusServiceUnavailable || !strings.Contains(resp.Result.Message, "context canceled") {
		t.Errorf("allowed=%v code=%d %q, patch %d bytes; want a 503 that says the context ended", resp.Allowed, resp.Result.Code, resp.Result.Message, len(resp.Patch))
	}
	if resp := mu.Handle(context.Background(), jobRequest()); !resp.Allowed || len(resp.Patch) == 0 {
		t.Errorf("with a live context: allowed=%v, patch %d bytes; want a mutation", resp.Allowed, len(resp.Patch))
	}
}

// TestRequestTimeoutFromQuery: the timeout the API server sends as ?timeout= becomes the context's deadline.
func TestRequestTimeoutFromQuery(t *testing.T) {
	cases := map[string]struct {
		query        string
		wantDeadline bool
	}{
		"api server timeout": {"?timeout=5s", true},
		"none":               {"", false},
		"malformed":          {"?timeout=soon", false},
		"negative":           {"?timeout=-1s", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var left time.Duration
			var has bool
			h := server.WithRequestTimeout(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				var d time.Time
				d, has = r.Context().Deadline()
				left = time.Until(d)
			}))
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/mutate"+tc.query, nil))
			if has != tc.wantDeadline || (has && (left <= 0 || left > 5*time.Second)) {
				t.Errorf("deadline set %v (%v left), want %v within 5s", has, left, tc.wantDeadline)
			}
		})
	}
}

// TestWorstShapesThroughHandler: each worst shape gets a bounded answer through the handler: a denial
// (403) with a short message, or a patch within the limits.
func TestWorstShapesThroughHandler(t *testing.T) {
	h, _ := newHandler(t)
	for _, s := range shapes.Worst() {
		t.Run(s.Name, func(t *testing.T) {
			resp := send(t, h, review{op: admissionv1.Create, raw: string(s.Raw)})
			switch {
			case !resp.Allowed:
				if resp.Result.Code != http.StatusForbidden || len(resp.Result.Message) > 8<<10 {
					t.Errorf("denied with code %d and %d bytes of message; want 403 and a short message", resp.Result.Code, len(resp.Result.Message))
				}
			case len(resp.Patch) == 0 || len(resp.Patch) > mutate.MaxPatchBytes:
				t.Errorf("allowed with a patch of %d bytes; want 1 to %d", len(resp.Patch), mutate.MaxPatchBytes)
			}
		})
	}
}
