package testenv

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/silogen/kaiwo-webhook/pkg/server"
)

// ModuleDir finds a dependency's source in the module cache, for the CRDs it ships.
func ModuleDir(mod string) (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", mod).Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %w", mod, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// StartEnv starts env, retrying when the loopback network refuses a bind or connect for a moment.
func StartEnv(env *envtest.Environment) (*rest.Config, error) {
	for attempt := 1; ; attempt++ {
		cfg, err := env.Start()
		if err == nil || attempt == 3 || !errors.Is(err, syscall.EADDRNOTAVAIL) {
			return cfg, err
		}
		_ = env.Stop()
		time.Sleep(time.Second)
	}
}

// WaitTLS waits until a TLS server completes a handshake at addr.
func WaitTLS(addr string, timeout time.Duration) error {
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

// WaitReady polls a readiness URL until it answers 200.
func WaitReady(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(url) //nolint:gosec // a loopback test URL
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s: %s", url, resp.Status, body)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Server is a real kube-apiserver with the KaiwoPolicy, Kueue and KubeRay CRDs and the webhook
// configuration of config/webhook (not a copy), pointed at the webhook server running in this process.
type Server struct {
	Config  *rest.Config
	Client  client.Client
	Metrics *server.Metrics
	// Registry holds Metrics and nothing else.
	Registry *prometheus.Registry
	env      *envtest.Environment
	stop     func()
}

// StartServer starts it all; root is the repository root. KUBEBUILDER_ASSETS must name the binaries.
func StartServer(root string) (*Server, error) {
	return StartServerWith(root, ServerOptions{})
}

// ServerOptions change what StartServer sets up.
type ServerOptions struct {
	// WithoutKueue leaves Kueue's CRDs out (KueueCRDs finds them, to install later).
	WithoutKueue bool
	// KueueCheckInterval is the server's; zero means its default.
	KueueCheckInterval time.Duration
}

// KueueCRDs is the directory of Kueue's CRDs in the module cache.
func KueueCRDs() (string, error) {
	dir, err := ModuleDir("sigs.k8s.io/kueue")
	return filepath.Join(dir, "config/components/crd/bases"), err
}

// StartServerWith is StartServer with options.
func StartServerWith(root string, o ServerOptions) (*Server, error) {
	dirs := []string{filepath.Join(root, "config", "crd")}
	for _, m := range []struct{ mod, sub string }{
		{"sigs.k8s.io/kueue", "config/components/crd/bases"},
		{"github.com/ray-project/kuberay/ray-operator", "config/crd/bases"},
	} {
		if o.WithoutKueue && m.mod == "sigs.k8s.io/kueue" {
			continue
		}
		dir, err := ModuleDir(m.mod)
		if err != nil {
			return nil, err
		}
		dirs = append(dirs, filepath.Join(dir, m.sub))
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:        dirs,
		ErrorIfCRDPathMissing:    true,
		WebhookInstallOptions:    envtest.WebhookInstallOptions{Paths: []string{filepath.Join(root, "config", "webhook")}},
		ControlPlaneStartTimeout: 2 * time.Minute,
		// envtest waits 10s by default for the CRDs to be served; a loaded machine needs longer.
		CRDInstallOptions: envtest.CRDInstallOptions{MaxTime: 2 * time.Minute},
	}
	cfg, err := StartEnv(env)
	if err != nil {
		return nil, fmt.Errorf("starting envtest: %w", err)
	}
	s := &Server{Config: cfg, env: env, Registry: prometheus.NewRegistry()}
	s.Metrics = server.NewMetrics(s.Registry)
	ctx, cancel := context.WithCancel(context.Background())
	wh := env.WebhookInstallOptions
	probePort, err := FreePort()
	if err != nil {
		cancel()
		_ = env.Stop()
		return nil, err
	}
	probe := "127.0.0.1:" + strconv.Itoa(probePort)
	mgr, err := server.NewManager(ctx, cfg, server.Options{
		Host: wh.LocalServingHost, Port: wh.LocalServingPort, CertDir: wh.LocalServingCertDir,
		MetricsAddr: "0", ProbeAddr: probe, Metrics: s.Metrics, KueueCheckInterval: o.KueueCheckInterval,
		// A test package may start several servers in its process, one after the other or at once.
		SkipControllerNameValidation: true,
	})
	if err != nil {
		cancel()
		_ = env.Stop()
		return nil, fmt.Errorf("manager: %w", err)
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		_ = mgr.Start(ctx)
	}()
	// The manager stops before envtest removes its certificates.
	s.stop = func() { cancel(); <-stopped; _ = env.Stop() }
	if err := WaitTLS(net.JoinHostPort(wh.LocalServingHost, strconv.Itoa(wh.LocalServingPort)), time.Minute); err != nil {
		s.Stop()
		return nil, err
	}
	// Ready: the policy index is built (before that the webhook refuses).
	if err := WaitReady("http://"+probe+"/readyz", time.Minute); err != nil {
		s.Stop()
		return nil, err
	}
	if s.Client, err = client.New(cfg, client.Options{Scheme: server.Scheme()}); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Stop stops the server, then the control plane.
func (s *Server) Stop() { s.stop() }

// AddUser gives a client configuration of a new user (certificate authentication) in groups.
func (s *Server) AddUser(name string, groups ...string) (*rest.Config, error) {
	u, err := s.env.ControlPlane.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return nil, err
	}
	return u.Config(), nil
}
