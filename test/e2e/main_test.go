package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	"github.com/silogen/kaiwo-webhook/internal/testenv"
	"github.com/silogen/kaiwo-webhook/pkg/server"
)

const (
	kaiwoNS   = "kaiwo-system"
	kueueNS   = "kueue-system"
	certName  = "kaiwo-webhook"
	secretTLS = "kaiwo-webhook-tls"

	kueueMutatingName   = "kueue-mutating-webhook-configuration"
	kueueValidatingName = "kueue-validating-webhook-configuration"
)

var (
	root = "../.."

	cfg     *rest.Config
	k8s     client.Client
	testEnv *envtest.Environment

	kubeconfig string // admin kubeconfig file the processes and kubectl use
	kubectl    string
	workDir    string // logs, certificates, configuration of this run

	// our server
	webhookBin  string
	webhookPort int
	webhookCert string // cert dir fed from cert-manager's Secret; the replicas are in replicas_test.go

	kueueDir      string
	kueueCABundle []byte
	kueuePort     int
	procs         []*proc
)

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv("E2E") != "1" {
		fmt.Println("e2e: skipped; run `make test-e2e` (sets E2E=1 and builds the binaries)")
		os.Exit(0)
	}
	os.Exit(run(m))
}

func run(m *testing.M) (code int) {
	logf.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	start := time.Now()
	var err error
	workDir, err = os.MkdirTemp("", "kaiwo-e2e-")
	if err != nil {
		return fail(err)
	}
	defer func() {
		stopProcs()
		if code != 0 {
			for _, p := range procs {
				p.tail(40)
			}
			fmt.Fprintf(os.Stderr, "e2e: logs and files kept in %s\n", workDir)
		} else if os.Getenv("E2E_KEEP") == "" {
			_ = os.RemoveAll(workDir)
		}
	}()

	env := map[string]string{}
	for _, k := range append([]string{"KUBEBUILDER_ASSETS", "KUEUE_BIN", "KUEUE_DIR", "CERT_MANAGER_BIN", "CERT_MANAGER_DIR", "KUBERAY_DIR"}, kindDirs...) {
		env[k] = os.Getenv(k)
		if env[k] == "" {
			return fail(fmt.Errorf("%s is not set; run `make test-e2e` (hack/e2e.sh sets it from hack/envtest-assets.sh and hack/e2e-assets.sh)", k))
		}
	}
	kueueDir = env["KUEUE_DIR"]
	kubectl = filepath.Join(env["KUBEBUILDER_ASSETS"], "kubectl")

	// 1. etcd and kube-apiserver, with every CRD the components need.
	testEnv = &envtest.Environment{
		CRDInstallOptions: envtest.CRDInstallOptions{
			Paths: append([]string{
				filepath.Join(root, "config", "crd"),
				filepath.Join(kueueDir, "config", "components", "crd", "bases"),
				filepath.Join(env["KUBERAY_DIR"], "config", "crd", "bases"),
				filepath.Join(env["CERT_MANAGER_DIR"], "deploy", "crds"),
			}, kindCRDs(env)...),
			ErrorIfPathMissing: true,
			// About 60 CRDs on a busy machine: envtest's 10s default is too short.
			MaxTime: 3 * time.Minute,
		},
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	cfg, err = testenv.StartEnv(testEnv)
	if err != nil {
		return fail(fmt.Errorf("starting etcd and kube-apiserver: %w", err))
	}
	// The components stop first, while the API server still answers them: stopped under them, it
	// waits its whole shutdown timeout for their watches, and they for it.
	defer func() { stopProcs(); _ = testEnv.Stop() }()
	scheme := server.Scheme()
	for _, add := range []func(*runtime.Scheme) error{rayv1.AddToScheme, apiextensionsv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return fail(err)
		}
	}
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return fail(err)
	}
	if err := writeKubeconfig(); err != nil {
		return fail(err)
	}
	logf.Log.Info("control plane up")
	fmt.Printf("e2e: control plane up in %v (work dir %s)\n", time.Since(start).Round(time.Second), workDir)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// 2. cert-manager: issuing controllers and CA injector.
	cm, err := startProc("cert-manager", nil, env["CERT_MANAGER_BIN"], "--kubeconfig", kubeconfig)
	if err != nil {
		return fail(err)
	}
	procs = append(procs, cm)

	// 3. Our server's binary, built while cert-manager starts.
	webhookBin = filepath.Join(workDir, "webhook")
	build := exec.Command("go", "build", "-o", webhookBin, "./cmd/webhook")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fail(fmt.Errorf("building cmd/webhook: %w", err))
	}

	// 4. config/webhook through the test/e2e/config overlay.
	if webhookPort, err = testenv.FreePort(); err != nil {
		return fail(err)
	}
	if err := applyOverlay(ctx); err != nil {
		return fail(err)
	}
	// 5. cert-manager issues the serving certificate and injects its CA.
	if err := waitCertificates(ctx); err != nil {
		return fail(err)
	}
	fmt.Printf("e2e: cert-manager issued %s/%s and injected its CA after %v\n", kaiwoNS, secretTLS, time.Since(start).Round(time.Second))

	// 6. Our server, two replicas behind a balancer, serving the certificate from that Secret.
	if err := startWebhook(ctx); err != nil {
		return fail(err)
	}

	// 7. Kueue, with its webhooks registered as its config/ says.
	if err := startKueue(ctx, env["KUEUE_BIN"]); err != nil {
		return fail(err)
	}
	fmt.Printf("e2e: all components up in %v\n", time.Since(start).Round(time.Second))
	return m.Run()
}

// stopProcs stops every component, the last started first; stopping a stopped one does nothing.
func stopProcs() {
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop()
	}
}

func fail(err error) int {
	fmt.Fprintln(os.Stderr, "e2e:", err)
	return 1
}

func writeKubeconfig() error {
	user, err := testEnv.ControlPlane.AddUser(envtest.User{Name: "e2e-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	kubeconfig = filepath.Join(workDir, "kubeconfig")
	return os.WriteFile(kubeconfig, kc, 0o600)
}

// proc is a component running as its own process, its output in a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func startProc(name string, env []string, bin string, args ...string) (*proc, error) {
	p := &proc{name: name, log: filepath.Join(workDir, name+".log"), done: make(chan struct{})}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(append(os.Environ(), "KUBECONFIG="+kubeconfig), env...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s (%s): %w", name, bin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits, then kills.
func (p *proc) stop() {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) tail(n int) {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	state := "running"
	if !p.running() {
		state = fmt.Sprintf("exited: %v", p.err)
	}
	fmt.Fprintf(os.Stderr, "---- %s (%s), last %d lines of %s\n%s\n", p.name, state, len(lines), p.log, strings.Join(lines, "\n"))
}

// kubectlRun runs the envtest kubectl against the test cluster.
func kubectlRun(stdin []byte, args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command(kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, e.String())
	}
	return o.String(), e.String(), err
}

// applyOverlay renders test/e2e/config with kubectl's kustomize, points every
// webhook at our server's port and applies it.
func applyOverlay(ctx context.Context) error {
	out, _, err := kubectlRun(nil, "kustomize", filepath.Join(root, "test", "e2e", "config"))
	if err != nil {
		return err
	}
	rendered, err := localWebhooks([]byte(out), webhookPort)
	if err != nil {
		return fmt.Errorf("test/e2e/config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(workDir, "config-webhook.yaml"), rendered, 0o644); err != nil {
		return err
	}
	// Namespace and CRD first, so that the namespaced objects and the KaiwoPolicy CRD are known.
	var lastErr error
	for ctx.Err() == nil {
		if _, _, lastErr = kubectlRun(rendered, "apply", "-f", "-"); lastErr == nil {
			return nil
		}
		time.Sleep(time.Second)
	}
	return fmt.Errorf("applying test/e2e/config: %w", lastErr)
}

// waitCertificates waits for cert-manager to issue our Certificate and for its
// CA injector to fill every webhook's caBundle, then writes the Secret's
// certificate and key to the cert dir our server reads.
func waitCertificates(ctx context.Context) error {
	var sec corev1.Secret
	var lastErr error
	wait := func(what string, f func() error) error {
		for {
			if lastErr = f(); lastErr == nil {
				return nil
			}
			if ctx.Err() != nil {
				return fmt.Errorf("%s: %w", what, lastErr)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if err := wait("Certificate kaiwo-system/kaiwo-webhook ready", func() error {
		c := &unstructured.Unstructured{}
		c.SetAPIVersion("cert-manager.io/v1")
		c.SetKind("Certificate")
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: kaiwoNS, Name: certName}, c); err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(c.Object, "status", "conditions")
		for _, cond := range conds {
			m, _ := cond.(map[string]any)
			if m["type"] == "Ready" && m["status"] == "True" {
				return nil
			}
		}
		return fmt.Errorf("not ready: %v", conds)
	}); err != nil {
		return err
	}
	if err := wait("Secret "+secretTLS, func() error {
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: kaiwoNS, Name: secretTLS}, &sec); err != nil {
			return err
		}
		if len(sec.Data["tls.crt"]) == 0 || len(sec.Data["tls.key"]) == 0 || len(sec.Data["ca.crt"]) == 0 {
			return errors.New("tls.crt, tls.key or ca.crt empty")
		}
		return nil
	}); err != nil {
		return err
	}
	if err := wait("CA injected into the kaiwo-webhook configurations", func() error {
		return caInjected(ctx, sec.Data["ca.crt"])
	}); err != nil {
		return err
	}
	webhookCert = filepath.Join(workDir, "webhook-certs")
	return writeServingCert(&sec)
}

func writeServingCert(sec *corev1.Secret) error {
	if err := os.MkdirAll(webhookCert, 0o700); err != nil {
		return err
	}
	for _, k := range []string{"tls.crt", "tls.key"} {
		if err := os.WriteFile(filepath.Join(webhookCert, k), sec.Data[k], 0o600); err != nil {
			return err
		}
	}
	return nil
}

func caInjected(ctx context.Context, ca []byte) error {
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	if err := k8s.Get(ctx, types.NamespacedName{Name: "kaiwo-webhook"}, &mwc); err != nil {
		return err
	}
	for _, w := range mwc.Webhooks {
		if !bytes.Equal(w.ClientConfig.CABundle, ca) {
			return fmt.Errorf("mutating webhook %s: caBundle is not the Secret's ca.crt", w.Name)
		}
	}
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	if err := k8s.Get(ctx, types.NamespacedName{Name: "kaiwo-webhook"}, &vwc); err != nil {
		return err
	}
	for _, w := range vwc.Webhooks {
		if !bytes.Equal(w.ClientConfig.CABundle, ca) {
			return fmt.Errorf("validating webhook %s: caBundle is not the Secret's ca.crt", w.Name)
		}
	}
	return nil
}

func probe(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %s: %s", url, resp.Status, b)
	}
	return nil
}

// tlsVerify completes a verified TLS handshake with addr, as the API server does.
func tlsVerify(addr string, pool *x509.CertPool) error {
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	if err != nil {
		return err
	}
	return conn.Close()
}

// servedCert returns the leaf certificate addr serves.
func servedCert(addr string) ([]byte, error) {
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // we compare the raw certificate
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Raw, nil
}

// startKueue writes Kueue's Configuration, gives it a serving certificate for
// 127.0.0.1, registers its webhooks from its config/components/webhook (only
// the clientConfig changed to this process) and starts it.
func startKueue(ctx context.Context, bin string) error {
	var err error
	if kueuePort, err = testenv.FreePort(); err != nil {
		return err
	}
	probePort, err := testenv.FreePort()
	if err != nil {
		return err
	}
	certDir := filepath.Join(workDir, "kueue-certs")
	if kueueCABundle, err = testenv.WriteServingCert(certDir, "kueue-webhook-e2e"); err != nil {
		return err
	}
	// Without its internal cert rotator, Kueue's metrics server reads a fixed
	// path (cmd/kueue/main.go: /etc/kueue/metrics/certs); it must exist even
	// with metrics off. Fill it only when empty.
	if _, err := os.Stat("/etc/kueue/metrics/certs/tls.crt"); errors.Is(err, os.ErrNotExist) {
		if _, err := testenv.WriteServingCert("/etc/kueue/metrics/certs", "kueue-metrics-e2e"); err != nil {
			return fmt.Errorf("kueue needs /etc/kueue/metrics/certs: %w", err)
		}
	}
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kueueNS}}); err != nil {
		return err
	}
	conf := fmt.Sprintf(`apiVersion: config.kueue.x-k8s.io/v1beta2
kind: Configuration
namespace: %s
health:
  healthProbeBindAddress: 127.0.0.1:%d
metrics:
  bindAddress: "0"
webhook:
  host: 127.0.0.1
  port: %d
  certDir: %s
leaderElection:
  leaderElect: false
internalCertManagement:
  enable: false
manageJobsWithoutQueueName: false
clientConnection:
  qps: 100
  burst: 200
integrations:
  frameworks:
%s`, kueueNS, probePort, kueuePort, certDir, frameworksYAML())
	confFile := filepath.Join(workDir, "kueue-config.yaml")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		return err
	}
	mwc, vwc, err := kueueWebhooks()
	if err != nil {
		return err
	}
	if err := k8s.Create(ctx, mwc); err != nil {
		return err
	}
	if err := k8s.Create(ctx, vwc); err != nil {
		return err
	}
	// The visibility API server needs an APIService and aggregation, which this
	// control plane does not have; nothing here uses it.
	p, err := startProc("kueue", nil, bin, "--config", confFile, "--feature-gates", "VisibilityOnDemand=false", "--zap-log-level", "2")
	if err != nil {
		return err
	}
	procs = append(procs, p)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(kueueCABundle)
	for {
		err = probe(ctx, "http://127.0.0.1:"+strconv.Itoa(probePort)+"/readyz")
		if err == nil {
			err = tlsVerify("127.0.0.1:"+strconv.Itoa(kueuePort), pool)
		}
		if err == nil {
			return nil
		}
		if !p.running() {
			return fmt.Errorf("kueue exited: %v", p.err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("kueue not ready: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// kueueWebhooks reads Kueue's own webhook manifests and applies what its
// config/components/webhook kustomization and config/default do (namespace
// selectors, the kueue- name prefix); the clientConfig points at the local process.
func kueueWebhooks() (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	f, err := os.Open(filepath.Join(kueueDir, "config", "components", "webhook", "manifests.yaml"))
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var mwc *admissionregistrationv1.MutatingWebhookConfiguration
	var vwc *admissionregistrationv1.ValidatingWebhookConfiguration
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, nil, err
		}
		switch tm.Kind {
		case "MutatingWebhookConfiguration":
			mwc = &admissionregistrationv1.MutatingWebhookConfiguration{}
			if err := yaml.UnmarshalStrict(doc, mwc); err != nil {
				return nil, nil, err
			}
		case "ValidatingWebhookConfiguration":
			vwc = &admissionregistrationv1.ValidatingWebhookConfiguration{}
			if err := yaml.UnmarshalStrict(doc, vwc); err != nil {
				return nil, nil, err
			}
		}
	}
	if mwc == nil || vwc == nil {
		return nil, nil, errors.New("kueue webhook manifests: no Mutating/ValidatingWebhookConfiguration")
	}
	exclude := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-system", kueueNS},
	}}}
	selected := map[string]bool{"pod": true, "deployment": true, "statefulset": true}
	local := func(cc *admissionregistrationv1.WebhookClientConfig) {
		path := ptr.Deref(cc.Service.Path, "/")
		cc.Service = nil
		cc.URL = ptr.To(fmt.Sprintf("https://127.0.0.1:%d%s", kueuePort, path))
		cc.CABundle = kueueCABundle
	}
	mwc.Name = kueueMutatingName
	for i := range mwc.Webhooks {
		w := &mwc.Webhooks[i]
		local(&w.ClientConfig)
		if selected[strings.TrimSuffix(strings.TrimPrefix(w.Name, "m"), ".kb.io")] {
			w.NamespaceSelector = exclude.DeepCopy()
		}
	}
	vwc.Name = kueueValidatingName
	for i := range vwc.Webhooks {
		w := &vwc.Webhooks[i]
		local(&w.ClientConfig)
		if selected[strings.TrimSuffix(strings.TrimPrefix(w.Name, "v"), ".kb.io")] {
			w.NamespaceSelector = exclude.DeepCopy()
		}
	}
	return mwc, vwc, nil
}
