package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	. "github.com/silogen/kaiwo-webhook/internal/testobj"
	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/controller"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
	"github.com/silogen/kaiwo-webhook/pkg/server"
)

// Before the index was built every namespace would resolve to no policy: the handler refuses with
// 503 instead of admitting unmutated, whatever the kind and however it opted in.
func TestHandlerRefusesBeforeIndexBuilt(t *testing.T) {
	sync := &controller.IndexSync{Index: policy.NewIndex()}
	h := &webhook.Admission{Handler: &server.Mutator{Kinds: mutate.Builtin(), Policies: sync, Metrics: server.NewMetrics(prometheus.NewRegistry()), Log: logr.Discard()}}
	for name, obj := range map[string]runtime.Object{
		"annotated Job":        MakeJob("j", "ml").Annotate(annotations.GPUs, "1").Obj(),
		"plain Job":            MakeJob("j", "ml").Obj(),
		"annotated Deployment": MakeDeployment("d", "ml").Annotate(annotations.GPUs, "1").Obj(),
		"annotated RayJob":     MakeRayJob("r", "ml", "gpu").Annotate(annotations.GPUs, "8").Obj(),
	} {
		t.Run(name, func(t *testing.T) {
			r := send(t, h, review{op: admissionv1.Create, obj: obj})
			if r.Allowed || r.Result == nil || r.Result.Code != http.StatusServiceUnavailable {
				t.Fatalf("allowed=%v result=%+v, want a 503 refusal", r.Allowed, r.Result)
			}
			if !strings.Contains(r.Result.Message, "policy index not built yet") {
				t.Errorf("message %q does not say the index is not built", r.Result.Message)
			}
		})
	}
	if err := sync.Synced(nil); err == nil || !strings.Contains(err.Error(), "not built") {
		t.Errorf("readiness before the build = %v, want policy index not built yet", err)
	}
}

func handlerWithKueue(served bool) http.Handler {
	return &webhook.Admission{Handler: &server.Mutator{Kinds: mutate.Builtin(),
		Policies: fixedPolicy{policy.Default()}, Metrics: server.NewMetrics(prometheus.NewRegistry()), Log: logr.Discard(),
		KueueServed: func() bool { return served },
	}}
}

// A queued workload in a cluster without Kueue would stay suspended with no word: it is admitted
// with a warning that says so. Unqueued ones, and every one once Kueue is served, get no such warning.
func TestKueueNotInstalledWarning(t *testing.T) {
	queuedJob := MakeJob("j", "ml").Annotate(annotations.GPUs, "1").Obj()
	cases := map[string]struct {
		obj    runtime.Object
		served bool
		want   bool
	}{
		"queued Job, Kueue absent":                {queuedJob, false, true},
		"queued RayJob, Kueue absent":             {MakeRayJob("r", "ml", "gpu").Annotate(annotations.GPUs, "8").Obj(), false, true},
		"Deployment queued by annotation, absent": {MakeDeployment("d", "ml").Annotate(annotations.Queue, "q").Obj(), false, true},
		"Job with queueing none, Kueue absent":    {MakeJob("j", "ml").Annotate(annotations.GPUs, "1").Annotate(annotations.Queueing, "none").Obj(), false, false},
		"unqueued Deployment, Kueue absent":       {MakeDeployment("d", "ml").Annotate(annotations.GPUs, "1").Obj(), false, false},
		"queued Job, Kueue served":                {queuedJob, true, false},
		// A second pass changes nothing, but the workload is still queued and still stuck.
		"already mutated queued Job, Kueue absent": {runtimeJSON(t, mutated(t, queuedJob)), false, true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := send(t, handlerWithKueue(tc.served), review{op: admissionv1.Create, obj: tc.obj})
			if !r.Allowed {
				t.Fatalf("denied: %+v", r.Result)
			}
			if got := slices.Contains(r.Warnings, server.KueueNotInstalled); got != tc.want {
				t.Errorf("Kueue-not-installed warning = %v, want %v; warnings %q", got, tc.want, r.Warnings)
			}
		})
	}
}

func runtimeJSON(t *testing.T, raw []byte) runtime.Object {
	t.Helper()
	return &runtime.Unknown{Raw: raw, ContentType: runtime.ContentTypeJSON}
}

// On the first signal the replica turns unready at once but keeps serving; its responses close their
// connections so clients move to a ready replica; the manager's context ends only after the delay.
func TestDrainOnSignal(t *testing.T) {
	d := &server.Drain{}
	signals := make(chan os.Signal, 1)
	ctx := d.Context(context.Background(), time.Second, signals, logr.Discard())
	h := d.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	serve := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/mutate", nil))
		return rec
	}
	if err := d.Ready(nil); err != nil {
		t.Fatalf("ready before the signal: %v", err)
	}
	if rec := serve(); rec.Header().Get("Connection") == "close" {
		t.Error("closes connections before the signal")
	}

	signals <- syscall.SIGTERM
	deadline := time.Now().Add(5 * time.Second)
	for d.Ready(nil) == nil && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := d.Ready(nil); err == nil {
		t.Fatal("still ready after SIGTERM")
	}
	if ctx.Err() != nil {
		t.Fatal("manager context cancelled at the signal, before the drain delay")
	}
	rec := serve()
	if rec.Code != http.StatusOK || rec.Body.String() != "ok" {
		t.Errorf("while draining: HTTP %d %q, want the request served", rec.Code, rec.Body)
	}
	if rec.Header().Get("Connection") != "close" {
		t.Error("while draining, responses do not close their connection")
	}
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("manager context not cancelled after the drain delay")
	}
}

// A second signal during the drain cancels at once.
func TestDrainSecondSignal(t *testing.T) {
	d := &server.Drain{}
	signals := make(chan os.Signal, 2)
	ctx := d.Context(context.Background(), time.Hour, signals, logr.Discard())
	signals <- syscall.SIGTERM
	signals <- syscall.SIGINT
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a second signal did not cancel the drain")
	}
	if d.Ready(nil) == nil {
		t.Error("ready after the signals")
	}
}
