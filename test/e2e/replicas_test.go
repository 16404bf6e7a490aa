package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/silogen/kaiwo-webhook/internal/testenv"
)

// Leader election of the replicas: short, so a failover fits in a test; the renew deadline must
// exceed 1.2 retry periods and stay under the lease duration.
const (
	leaseDuration = 6 * time.Second
	renewDeadline = 4 * time.Second
	retryPeriod   = time.Second
	shutdownDelay = 2 * time.Second
	leaseName     = "kaiwo-webhook.kaiwo.silogen.ai"
)

// replica is one `webhook serve` process with --leader-elect, as one pod of the Deployment.
type replica struct {
	name                                string
	webhookPort, probePort, metricsPort int
	proc                                *proc
}

var (
	replicas [2]*replica
	lb       *balancer
	caPool   *x509.CertPool // the CA of the serving certificate (cert-manager's Secret)
)

func (r *replica) webhookAddr() string { return "127.0.0.1:" + strconv.Itoa(r.webhookPort) }
func (r *replica) readyURL() string {
	return "http://127.0.0.1:" + strconv.Itoa(r.probePort) + "/readyz"
}
func (r *replica) metricsURL() string {
	return "https://127.0.0.1:" + strconv.Itoa(r.metricsPort) + "/metrics"
}

// startWebhook starts the balancer on webhookPort (the port the webhook configurations call) and
// every replica that is not running, and waits until each is ready and serves the certificate
// cert-manager issued.
func startWebhook(ctx context.Context) error {
	if caPool == nil {
		var sec corev1.Secret
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: kaiwoNS, Name: secretTLS}, &sec); err != nil {
			return err
		}
		caPool = x509.NewCertPool()
		caPool.AppendCertsFromPEM(sec.Data["ca.crt"])
	}
	for i := range replicas {
		if replicas[i] == nil {
			r := &replica{name: fmt.Sprintf("webhook-%c", 'a'+i)}
			for _, p := range []*int{&r.webhookPort, &r.probePort, &r.metricsPort} {
				var err error
				if *p, err = testenv.FreePort(); err != nil {
					return err
				}
			}
			replicas[i] = r
		}
	}
	if lb == nil {
		var err error
		if lb, err = newBalancer("127.0.0.1:"+strconv.Itoa(webhookPort), replicas[:]...); err != nil {
			return err
		}
	}
	for _, r := range replicas {
		if r.proc == nil || !r.proc.running() {
			if err := r.start(); err != nil {
				return err
			}
		}
	}
	for _, r := range replicas {
		if err := r.waitReady(ctx); err != nil {
			return err
		}
	}
	// As endpoints do, the balancer learns readiness a moment later.
	for lb.readyCount() != len(replicas) {
		if ctx.Err() != nil {
			return fmt.Errorf("the balancer does not route to every replica: %w", ctx.Err())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

func (r *replica) start() error {
	p, err := startProc(r.name, nil, webhookBin, "serve",
		"--cert-dir", webhookCert,
		"--webhook-host", "127.0.0.1",
		"--webhook-port", strconv.Itoa(r.webhookPort),
		"--metrics-bind-address", "127.0.0.1:"+strconv.Itoa(r.metricsPort),
		"--health-probe-bind-address", "127.0.0.1:"+strconv.Itoa(r.probePort),
		"--leader-elect",
		"--leader-election-namespace", kaiwoNS,
		"--leader-elect-lease-duration", leaseDuration.String(),
		"--leader-elect-renew-deadline", renewDeadline.String(),
		"--leader-elect-retry-period", retryPeriod.String(),
		"--shutdown-delay", shutdownDelay.String())
	if err != nil {
		return err
	}
	r.proc = p
	procs = append(procs, p)
	return nil
}

func (r *replica) waitReady(ctx context.Context) error {
	for {
		err := probe(ctx, r.readyURL())
		if err == nil {
			err = tlsVerify(r.webhookAddr(), caPool)
		}
		if err == nil {
			return nil
		}
		if !r.proc.running() {
			return fmt.Errorf("%s exited: %v", r.name, r.proc.err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s not ready: %w", r.name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stopWebhook stops every replica (SIGTERM, the drain); the balancer then has no backend.
func stopWebhook() {
	for _, r := range replicas {
		if r != nil && r.proc != nil {
			r.proc.stop()
		}
	}
}

func webhookRunning() bool {
	for _, r := range replicas {
		if r == nil || r.proc == nil || !r.proc.running() {
			return false
		}
	}
	return true
}

// kill sends SIGKILL, as a crashed node or an OOM kill would.
func (r *replica) kill() {
	_ = r.proc.cmd.Process.Signal(syscall.SIGKILL)
	<-r.proc.done
}

// balancer is a TCP proxy that spreads connections over the ready backends, as a Service's
// endpoints do: it polls each /readyz, and a new connection goes to a ready backend only. An
// established connection stays where it is (as with kube-proxy) until either side closes it.
type balancer struct {
	ln       net.Listener
	backends []*replica
	ready    []atomic.Bool
	next     atomic.Uint64
	// refused counts connections closed for want of a ready backend.
	refused atomic.Int64
}

func newBalancer(addr string, backends ...*replica) (*balancer, error) {
	var ln net.Listener
	var err error
	for attempt := 0; attempt < 20; attempt++ { // loopback may refuse a bind for a moment
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	b := &balancer{ln: ln, backends: backends, ready: make([]atomic.Bool, len(backends))}
	go b.poll()
	go b.accept()
	return b, nil
}

func (b *balancer) poll() {
	client := &http.Client{Timeout: time.Second}
	for {
		for i, r := range b.backends {
			resp, err := client.Get(r.readyURL())
			ok := err == nil && resp.StatusCode == http.StatusOK
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			b.ready[i].Store(ok)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (b *balancer) accept() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		go b.serve(c)
	}
}

func (b *balancer) serve(c net.Conn) {
	defer c.Close()
	n := uint64(len(b.backends))
	start := b.next.Add(1)
	for k := uint64(0); k < n; k++ {
		i := (start + k) % n
		if !b.ready[i].Load() {
			continue
		}
		up, err := net.DialTimeout("tcp", b.backends[i].webhookAddr(), 2*time.Second)
		if err != nil {
			continue
		}
		pipe(c, up)
		return
	}
	b.refused.Add(1)
}

// pipe copies both ways until both directions ended, passing half-closes on.
func pipe(a, b net.Conn) {
	defer b.Close()
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
}

// waitRouting waits until the balancer routes to n backends.
func (b *balancer) waitRouting(ctx context.Context, n int) error {
	for b.readyCount() < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("the balancer routes to %d of %d replicas: %w", b.readyCount(), n, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// readyCount is how many backends the balancer currently routes to.
func (b *balancer) readyCount() int {
	n := 0
	for i := range b.ready {
		if b.ready[i].Load() {
			n++
		}
	}
	return n
}

// metricsGet reads a replica's metrics over HTTPS, verifying the serving certificate.
func metricsGet(ctx context.Context, r *replica, token string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.metricsURL(), nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := verifyingClient()
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// admitDirect posts an AdmissionReview for obj (CREATE) to one replica, as the API server would.
func admitDirect(r *replica, obj runtime.Object) (*admissionv1.AdmissionResponse, error) {
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	gvk := obj.GetObjectKind().GroupVersionKind()
	if gvk.Empty() {
		gvks, _, err := k8s.Scheme().ObjectKinds(obj)
		if err != nil {
			return nil, err
		}
		gvk = gvks[0]
	}
	m := obj.(metav1.Object)
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       "e2e-direct",
			Kind:      metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
			Namespace: m.GetNamespace(), Name: m.GetName(),
			Operation: admissionv1.Create,
			UserInfo:  authnv1.UserInfo{Username: "e2e"},
			Object:    runtime.RawExtension{Raw: raw},
		},
	}
	body, err := json.Marshal(review)
	if err != nil {
		return nil, err
	}
	client := verifyingClient()
	resp, err := client.Post("https://"+r.webhookAddr()+"/mutate", "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	if out.Response == nil {
		return nil, errors.New("no response in the AdmissionReview")
	}
	return out.Response, nil
}

// verifyingClient calls a replica's HTTPS ports, verifying the certificate cert-manager issued.
func verifyingClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: caPool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12,
	}}}
}
