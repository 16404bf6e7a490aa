package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	kueue "sigs.k8s.io/kueue/apis/kueue/v1beta2"

	"github.com/silogen/kaiwo-webhook/api/v1alpha1"
	"github.com/silogen/kaiwo-webhook/pkg/controller"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// Paths the webhook configurations call.
const (
	MutatePath         = "/mutate"
	ValidatePolicyPath = "/validate-kaiwopolicy"
	ValidatePath       = "/validate"
)

// Options configure the server.
type Options struct {
	// Kinds are the kinds the webhook handles; nil means mutate.Builtin().
	Kinds         *mutate.Registry
	Host, CertDir string
	Port          int
	// MetricsAddr serves /metrics over HTTPS (the webhook's certificate from CertDir, else a
	// self-signed one) to clients the API server authenticates and authorizes; "0" turns it off.
	MetricsAddr, ProbeAddr  string
	LeaderElect             bool
	LeaderElectionNamespace string
	// LeaseDuration, RenewDeadline and RetryPeriod tune leader election; zero means
	// controller-runtime's defaults (15s, 10s, 2s).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// GracefulShutdownTimeout bounds how long the stopping manager waits for its runnables (the
	// webhook server's requests in flight among them); zero means controller-runtime's 30s.
	GracefulShutdownTimeout time.Duration
	// Drain, if set, fails readiness once a shutdown signal arrived and closes connections after
	// their response while draining.
	Drain *Drain
	// KueueCheckInterval is how often a replica checks whether Kueue's API is served, until it is;
	// zero means 15s.
	KueueCheckInterval time.Duration
	// Metrics registers the webhook's own metrics; nil means controller-runtime's registry.
	Metrics *Metrics
	// MaxInflight bounds the requests (mutations and validations) that run at once; 0 means
	// DefaultMaxInflight.
	MaxInflight int
	// SkipControllerNameValidation lets a second manager run in the same process (tests only):
	// controller-runtime refuses two controllers of one name in a process.
	SkipControllerNameValidation bool
}

func nonZero(d time.Duration) *time.Duration {
	if d == 0 {
		return nil
	}
	return &d
}

// Scheme knows every type the server reads or writes.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme, kueue.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}

// NewManager assembles the webhook server, the policy index and the LocalQueue controller.
func NewManager(ctx context.Context, cfg *rest.Config, o Options) (manager.Manager, error) {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: Scheme(),
		Metrics: metricsserver.Options{
			BindAddress:    o.MetricsAddr,
			SecureServing:  true,
			CertDir:        o.CertDir,
			FilterProvider: filters.WithAuthenticationAndAuthorization,
			TLSOpts:        []func(*tls.Config){tlsOptions},
		},
		HealthProbeBindAddress:  o.ProbeAddr,
		LeaderElection:          o.LeaderElect,
		LeaderElectionID:        "kaiwo-webhook.kaiwo.silogen.ai",
		LeaderElectionNamespace: o.LeaderElectionNamespace,
		// A replica that stops hands the lease on at once instead of letting it expire.
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 nonZero(o.LeaseDuration),
		RenewDeadline:                 nonZero(o.RenewDeadline),
		RetryPeriod:                   nonZero(o.RetryPeriod),
		GracefulShutdownTimeout:       nonZero(o.GracefulShutdownTimeout),
		Controller:                    ctrlconfig.Controller{SkipNameValidation: &o.SkipControllerNameValidation},
		WebhookServer:                 NewWebhookServer(o.Host, o.Port, o.CertDir),
	})
	if err != nil {
		return nil, err
	}
	metrics := o.Metrics
	if metrics == nil {
		metrics = NewMetrics(ctrlmetrics.Registry)
	}
	kinds := o.Kinds
	if kinds == nil {
		kinds = mutate.Builtin()
	}
	index := policy.NewIndex()
	sync := &controller.IndexSync{Index: index, Reader: mgr.GetAPIReader()}
	if err := sync.Setup(ctx, mgr); err != nil {
		return nil, fmt.Errorf("policy index: %w", err)
	}
	status := &controller.PolicyStatus{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("kaiwo-webhook")}
	if err := status.Setup(mgr); err != nil {
		return nil, fmt.Errorf("policy status: %w", err)
	}
	kueueWatch, err := setupKueue(ctx, cfg, mgr, sync, status, o.KueueCheckInterval)
	if err != nil {
		return nil, err
	}
	if err := setupKinds(ctx, cfg, mgr, kinds, metrics, o.KueueCheckInterval); err != nil {
		return nil, err
	}
	drain := o.Drain
	if drain == nil {
		drain = &Drain{}
	}
	// Mutations and validations share one bound on the requests that run at once.
	throttle := NewThrottle(o.MaxInflight, metrics)
	serve := func(h admission.Handler) http.Handler {
		return drain.Wrap(WithRequestTimeout(&webhook.Admission{Handler: throttle.Bound(h)}))
	}
	hooks := mgr.GetWebhookServer()
	hooks.Register(MutatePath, serve(&Mutator{Kinds: kinds, Policies: sync, Metrics: metrics, Log: ctrl.Log.WithName("mutate"), KueueServed: kueueWatch.Served}))
	// The workload validator reads the Deployment behind a scale-up uncached (the API reader).
	hooks.Register(ValidatePath, serve(&WorkloadValidator{Kinds: kinds, Policies: sync, Reader: mgr.GetAPIReader(), Metrics: metrics, Log: ctrl.Log.WithName("validate")}))
	hooks.Register(ValidatePolicyPath, drain.Wrap(&webhook.Admission{Handler: &PolicyValidator{Conflicts: index.Conflicts}}))
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("shutdown", drain.Ready); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("webhook", hooks.StartedChecker()); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("policies", sync.Synced); err != nil {
		return nil, err
	}
	return mgr, nil
}

// NewWebhookServer is the HTTPS server the webhooks are served on: the certificate and key in certDir,
// reloaded when the files change, TLS 1.2 or later, HTTP/1.1 only.
func NewWebhookServer(host string, port int, certDir string) webhook.Server {
	return webhook.NewServer(webhook.Options{Host: host, Port: port, CertDir: certDir, TLSOpts: []func(*tls.Config){tlsOptions}})
}

func tlsOptions(c *tls.Config) {
	c.MinVersion = tls.VersionTLS12
	c.NextProtos = []string{"http/1.1"} // HTTP/2 off (CVE-2023-44487, CVE-2023-39325)
}
