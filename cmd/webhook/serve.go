package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/silogen/kaiwo-webhook/pkg/server"
)

func runServe(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o server.Options
	fs.StringVar(&o.CertDir, "cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory with tls.crt and tls.key (the cert-manager Secret); reloaded when the files change")
	fs.StringVar(&o.Host, "webhook-host", "", "address the webhook server listens on (default: all)")
	fs.IntVar(&o.Port, "webhook-port", 9443, "webhook server port")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8080", "Prometheus metrics address; 0 turns metrics off")
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	fs.BoolVar(&o.LeaderElect, "leader-elect", false, "elect a leader for the LocalQueue controller (the webhook serves on every replica)")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", os.Getenv("POD_NAMESPACE"), "namespace of the leader election lease")
	fs.IntVar(&o.MaxInflight, "max-inflight", server.DefaultMaxInflight(), "mutations that run at once; more wait in line (up to 4s or their deadline), then get a 429 answer")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("serve")
	cfg, err := ctrl.GetConfig()
	if err != nil {
		fmt.Fprintf(stderr, "kubeconfig: %v\n", err)
		return 1
	}
	ctx := ctrl.SetupSignalHandler()
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
