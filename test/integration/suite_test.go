package integration

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/silogen/kaiwo-webhook/pkg/server"
)

var (
	cfg     *rest.Config
	k8s     client.Client
	metrics *server.Metrics
	testEnv *envtest.Environment
	root    = "../.."
)

// moduleDir finds a dependency's source, for the CRDs it ships.
func moduleDir(mod string) (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", mod).Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %w", mod, err)
	}
	return strings.TrimSpace(string(out)), nil
}

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("integration: skipped under -short")
		os.Exit(0)
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "integration: KUBEBUILDER_ASSETS is not set; run `make test` (it builds kube-apiserver and etcd once) or use -short")
		os.Exit(1)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true), zap.Level(zapcore.Level(zapLevel()))))
	kueueDir, err := moduleDir("sigs.k8s.io/kueue")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	rayDir, err := moduleDir("github.com/ray-project/kuberay/ray-operator")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	testEnv = &envtest.Environment{
		CRDDirectoryPaths: []string{
			filepath.Join(root, "config", "crd"),
			filepath.Join(kueueDir, "config", "components", "crd", "bases"),
			filepath.Join(rayDir, "config", "crd", "bases"),
		},
		ErrorIfCRDPathMissing: true,
		// The webhook configuration users install, not a copy: envtest points it at this process.
		WebhookInstallOptions:    envtest.WebhookInstallOptions{Paths: []string{filepath.Join(root, "config", "webhook")}},
		ControlPlaneStartTimeout: 2 * time.Minute,
	}
	for attempt := 1; ; attempt++ {
		cfg, err = testEnv.Start()
		if err == nil || attempt == 3 || !errors.Is(err, syscall.EADDRNOTAVAIL) {
			break
		}
		_ = testEnv.Stop()
		time.Sleep(time.Second)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		return 1
	}
	defer func() { _ = testEnv.Stop() }()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	metrics = server.NewMetrics(prometheus.NewRegistry())
	wh := testEnv.WebhookInstallOptions
	mgr, err := server.NewManager(ctx, cfg, server.Options{
		Host: wh.LocalServingHost, Port: wh.LocalServingPort, CertDir: wh.LocalServingCertDir,
		MetricsAddr: "0", ProbeAddr: "0", Metrics: metrics,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		return 1
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager stopped:", err)
		}
	}()
	// Stop the manager before envtest removes its certificates.
	defer func() { cancel(); <-stopped }()
	if err := waitServing(net.JoinHostPort(wh.LocalServingHost, strconv.Itoa(wh.LocalServingPort)), time.Minute); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	k8s, err = client.New(cfg, client.Options{Scheme: server.Scheme()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func zapLevel() int8 {
	if os.Getenv("VERBOSE") != "" {
		return -1
	}
	return 1 // warnings and errors only
}

// waitServing waits until the webhook server completes a TLS handshake.
func waitServing(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // readiness probe only
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("webhook server at %s not serving after %v: %w", addr, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// eventually polls f until it returns nil or the timeout passes; it returns the time it took.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := f()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not true after %v: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
