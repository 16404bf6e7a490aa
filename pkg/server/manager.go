package server

import (
	"context"
	"crypto/tls"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	kueue "sigs.k8s.io/kueue/apis/kueue/v1beta2"

	"github.com/silogen/kaiwo-webhook/api/v1alpha1"
	"github.com/silogen/kaiwo-webhook/pkg/controller"
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
	Host, CertDir           string
	Port                    int
	MetricsAddr, ProbeAddr  string
	LeaderElect             bool
	LeaderElectionNamespace string
	// Metrics registers the webhook's own metrics; nil means controller-runtime's registry.
	Metrics *Metrics
	// MaxInflight bounds the mutations that run at once; 0 means DefaultMaxInflight.
	MaxInflight int
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
		Scheme:                  Scheme(),
		Metrics:                 metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:  o.ProbeAddr,
		LeaderElection:          o.LeaderElect,
		LeaderElectionID:        "kaiwo-webhook.kaiwo.silogen.ai",
		LeaderElectionNamespace: o.LeaderElectionNamespace,
		WebhookServer: webhook.NewServer(webhook.Options{
			Host:    o.Host,
			Port:    o.Port,
			CertDir: o.CertDir,
			TLSOpts: []func(*tls.Config){func(c *tls.Config) {
				c.MinVersion = tls.VersionTLS12
				c.NextProtos = []string{"http/1.1"} // HTTP/2 off (CVE-2023-44487, CVE-2023-39325)
			}},
		}),
	})
	if err != nil {
		return nil, err
	}
	metrics := o.Metrics
	if metrics == nil {
		metrics = NewMetrics(ctrlmetrics.Registry)
	}
	index := policy.NewIndex()
	sync := &controller.IndexSync{Index: index, Reader: mgr.GetAPIReader()}
	// The workload validator reads the Deployment behind a scale-up uncached (the API reader).
	mgr.GetWebhookServer().Register(ValidatePath, &webhook.Admission{Handler: &WorkloadValidator{
		Policies: sync, Reader: mgr.GetAPIReader(), Metrics: metrics, Log: ctrl.Log.WithName("validate")}})
	if err := sync.Setup(ctx, mgr); err != nil {
		return nil, fmt.Errorf("policy index: %w", err)
	}
	if err := setupLocalQueues(mgr, sync); err != nil {
		return nil, err
	}
	if err := (&controller.PolicyStatus{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("kaiwo-webhook")}).Setup(mgr); err != nil {
		return nil, fmt.Errorf("policy status: %w", err)
	}
	hooks := mgr.GetWebhookServer()
	mutator := &Mutator{Policies: sync, Metrics: metrics, Log: ctrl.Log.WithName("mutate")}
	hooks.Register(MutatePath, WithRequestTimeout(&webhook.Admission{Handler: NewThrottle(mutator, o.MaxInflight, metrics)}))
	hooks.Register(ValidatePolicyPath, &webhook.Admission{Handler: &PolicyValidator{Conflicts: index.Conflicts}})
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
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

func setupLocalQueues(mgr manager.Manager, sync *controller.IndexSync) error {
	gvk, err := mgr.GetClient().GroupVersionKindFor(&kueue.LocalQueue{})
	if err != nil {
		return err
	}
	if _, err := mgr.GetRESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
		ctrl.Log.Info("Kueue LocalQueue API not served; the LocalQueue controller is off", "error", err.Error())
		return nil
	}
	return (&controller.LocalQueues{Client: mgr.GetClient(), Sync: sync}).Setup(mgr)
}
