package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/server"
)

func runServe(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := server.Options{Kinds: mutate.Builtin()}
	fs.StringVar(&o.CertDir, "cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory with tls.crt and tls.key (the cert-manager Secret); reloaded when the files change")
	fs.StringVar(&o.Host, "webhook-host", "", "address the webhook server listens on (default: all)")
	fs.IntVar(&o.Port, "webhook-port", 9443, "webhook server port")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8443", "Prometheus metrics address, HTTPS for clients the API server authenticates and authorizes (get on the /metrics URL); 0 turns metrics off")
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	fs.BoolVar(&o.LeaderElect, "leader-elect", false, "elect a leader for the LocalQueue controller (the webhook serves on every replica)")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", os.Getenv("POD_NAMESPACE"), "namespace of the leader election lease")
	fs.IntVar(&o.MaxInflight, "max-inflight", server.DefaultMaxInflight(), "admission requests (mutations and validations) that run at once; more wait in line (up to 4s or their deadline), then get a 429 answer")
	fs.DurationVar(&o.LeaseDuration, "leader-elect-lease-duration", 15*time.Second, "how long a lease holds without renewal; a killed leader's controller moves within about this long")
	fs.DurationVar(&o.RenewDeadline, "leader-elect-renew-deadline", 10*time.Second, "how long the leader retries renewing before it gives the lease up (and exits, to be restarted)")
	fs.DurationVar(&o.RetryPeriod, "leader-elect-retry-period", 2*time.Second, "how often candidates try to take the lease")
	shutdownDelay := fs.Duration("shutdown-delay", 5*time.Second, "on SIGTERM, stay unready but keep serving this long before shutting down, while endpoints and clients move away")
	fs.DurationVar(&o.GracefulShutdownTimeout, "graceful-shutdown-timeout", 15*time.Second, "after the shutdown delay, how long to wait for requests in flight to finish")
	fs.DurationVar(&o.KueueCheckInterval, "kueue-check-interval", 15*time.Second, "how often to check whether Kueue's API is served, until it is")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := validateServe(o, *shutdownDelay); err != nil {
		fmt.Fprintf(stderr, "serve: %v\n", err)
		return 2
	}
	memLimit, err := goMemLimit(os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "serve: %v\n", err)
		return 2
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("serve")
	if memLimit > 0 {
		debug.SetMemoryLimit(memLimit)
		log.Info("Go memory limit set to 90% of the container's", "bytes", memLimit)
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		fmt.Fprintf(stderr, "kubeconfig: %v\n", err)
		return 1
	}
	o.Drain = &server.Drain{}
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	ctx := o.Drain.Context(context.Background(), *shutdownDelay, signals, log)
	// controller-runtime's manager does not return while caches that never synced (no RBAC yet) are
	// still starting; bound the shutdown anyway.
	go func() {
		<-ctx.Done()
		time.Sleep(o.GracefulShutdownTimeout + 5*time.Second)
		log.Info("the manager did not stop within the graceful shutdown timeout; exiting")
		os.Exit(1)
	}()
	mgr, err := server.NewManager(ctx, cfg, o)
	if err != nil {
		log.Error(err, "setting up")
		return 1
	}
	log.Info("starting", "port", o.Port, "certDir", o.CertDir)
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "stopped")
		return 1
	}
	return 0
}

// validateServe checks the durations before anything starts; leader election itself would only
// fail once the manager runs.
func validateServe(o server.Options, shutdownDelay time.Duration) error {
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"leader-elect-lease-duration", o.LeaseDuration}, {"leader-elect-renew-deadline", o.RenewDeadline},
		{"leader-elect-retry-period", o.RetryPeriod}, {"kueue-check-interval", o.KueueCheckInterval},
	} {
		if d.v <= 0 {
			return fmt.Errorf("--%s=%v: must be greater than 0", d.flag, d.v)
		}
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"shutdown-delay", shutdownDelay}, {"graceful-shutdown-timeout", o.GracefulShutdownTimeout}} {
		if d.v < 0 {
			return fmt.Errorf("--%s=%v: must not be negative", d.flag, d.v)
		}
	}
	if o.LeaseDuration <= o.RenewDeadline {
		return fmt.Errorf("--leader-elect-lease-duration=%v: must be greater than --leader-elect-renew-deadline (%v)", o.LeaseDuration, o.RenewDeadline)
	}
	// client-go's leader election: the renew deadline must exceed 1.2 retry periods.
	if float64(o.RenewDeadline) <= 1.2*float64(o.RetryPeriod) {
		return fmt.Errorf("--leader-elect-renew-deadline=%v: must be greater than 1.2 x --leader-elect-retry-period (%v)", o.RenewDeadline, o.RetryPeriod)
	}
	return nil
}
