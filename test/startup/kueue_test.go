package startup

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	kueue "sigs.k8s.io/kueue/apis/kueue/v1beta2"

	"github.com/silogen/kaiwo-webhook/api/v1alpha1"
	"github.com/silogen/kaiwo-webhook/internal/testenv"
	. "github.com/silogen/kaiwo-webhook/internal/testobj"
	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/server"
)

// warnings collects the API server's warnings, as kubectl prints them.
type warnings struct {
	mu  sync.Mutex
	got []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.got = append(w.got, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	got := w.got
	w.got = nil
	return got
}

// envtestOnly skips under -short and needs the control-plane binaries; it quiets the logs.
func envtestOnly(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("envtest")
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set; run `make test` (it builds kube-apiserver and etcd once) or use -short")
	}
	quiet()
}

// quiet sends the server's logs to stderr only with VERBOSE set.
func quiet() {
	out := io.Discard
	if os.Getenv("VERBOSE") != "" {
		out = os.Stderr
	}
	logf.SetLogger(zap.New(zap.WriteTo(out)))
}

func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	start := time.Now()
	for {
		err := f()
		if err == nil {
			t.Logf("%s after %v", what, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not true after %v: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Kueue installed after the server started: until then a queued Job is admitted with a warning
// that Kueue is not installed; once its CRDs are served, the server starts the LocalQueue
// controller (and the ResourceFlavor informer) by itself, creates the LocalQueue the policy asks
// for, and the warning stops.
func TestKueueInstalledAfterStart(t *testing.T) {
	envtestOnly(t)
	srv, err := testenv.StartServerWith("../..", testenv.ServerOptions{WithoutKueue: true, KueueCheckInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	ctx := context.Background()
	w := &warnings{}
	wcfg := rest.CopyConfig(srv.Config)
	wcfg.WarningHandler = w
	k8s, err := client.New(wcfg, client.Options{Scheme: server.Scheme()})
	if err != nil {
		t.Fatal(err)
	}

	p := &v1alpha1.KaiwoPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "team-late"},
		Spec: v1alpha1.KaiwoPolicySpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{annotations.Team: "late"}},
			Defaults:          &v1alpha1.PolicyDefaults{Queue: "team-late"},
			LocalQueue:        &v1alpha1.LocalQueuePolicy{Create: true, ClusterQueue: "cq-late"},
		},
	}
	if err := k8s.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	ns := "late"
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{annotations.Team: "late"}}}); err != nil {
		t.Fatal(err)
	}

	// Without Kueue: the queued Job is admitted, mutated, and told that Kueue is not installed.
	eventually(t, 30*time.Second, "queued Job admitted with the Kueue-not-installed warning", func() error {
		w.take()
		j := MakeJob(fmt.Sprintf("before-%d", time.Now().UnixNano()), ns).Annotate(annotations.GPUs, "1").Obj()
		if err := k8s.Create(ctx, j, client.DryRunAll); err != nil {
			return err
		}
		if j.Labels[annotations.KueueQueueName] != "team-late" {
			return fmt.Errorf("not mutated: labels %v", j.Labels)
		}
		if got := w.take(); !slices.Contains(got, server.KueueNotInstalled) {
			return fmt.Errorf("warnings %q", got)
		}
		return nil
	})

	dir, err := testenv.KueueCRDs()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := envtest.InstallCRDs(srv.Config, envtest.CRDInstallOptions{Paths: []string{dir}, ErrorIfPathMissing: true, MaxTime: 2 * time.Minute}); err != nil {
		t.Fatalf("installing Kueue's CRDs: %v", err)
	}
	installed := time.Now()
	eventually(t, time.Minute, "LocalQueue created in the policy's namespace after Kueue was installed", func() error {
		var lq kueue.LocalQueue
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "team-late"}, &lq); err != nil {
			return err
		}
		if lq.Spec.ClusterQueue != "cq-late" {
			return fmt.Errorf("clusterQueue %q", lq.Spec.ClusterQueue)
		}
		return nil
	})
	t.Logf("LocalQueue %v after the CRDs were installed", time.Since(installed).Round(time.Millisecond))

	w.take()
	j := MakeJob("after", ns).Annotate(annotations.GPUs, "1").Obj()
	if err := k8s.Create(ctx, j, client.DryRunAll); err != nil {
		t.Fatal(err)
	}
	if got := w.take(); slices.Contains(got, server.KueueNotInstalled) {
		t.Errorf("still warns that Kueue is not installed after it was: %q", got)
	}
}
