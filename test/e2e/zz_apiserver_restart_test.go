package e2e

// This file's name puts its test last (go test runs a package's files in name order): it restarts
// the API server under every other component.

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/silogen/kaiwo-webhook/api/v1alpha1"
	. "github.com/silogen/kaiwo-webhook/internal/testobj"
	"github.com/silogen/kaiwo-webhook/pkg/annotations"
)

// apiServerProcess finds envtest's kube-apiserver by its secure port: its pid and command line.
func apiServerProcess() (int, []string, error) {
	u, err := url.Parse(cfg.Host)
	if err != nil {
		return 0, nil, err
	}
	flag := "--secure-port=" + u.Port()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, nil, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(bytes.TrimRight(raw, "\x00")), "\x00")
		if filepath.Base(args[0]) != "kube-apiserver" {
			continue
		}
		for _, a := range args[1:] {
			if a == flag {
				return pid, args, nil
			}
		}
	}
	return 0, nil, fmt.Errorf("no kube-apiserver process with %s", flag)
}

// Scenario: the API server restarts (etcd keeps the data). The replicas keep serving from their
// index while it is away, and afterwards the index catches up with a policy change and a namespace
// relabelled as soon as the API server was back, before the replicas' watches had reconnected. A
// leader that could not renew its lease while the API server was away exits (controller-runtime
// does not run a controller on without the lease); the test restarts it, as the kubelet would.
func TestAPIServerRestart(t *testing.T) {
	policy(t, "e2e-apirestart", map[string]string{"kaiwo.silogen.ai/team": "e2e-apirestart"}, &v1alpha1.PolicyDefaults{Queue: "before"}, "")
	ns := "e2e-apirestart"
	namespace(t, ns, map[string]string{"kaiwo.silogen.ai/team": "e2e-apirestart"})
	moved := "e2e-apirestart-moved"
	namespace(t, moved, nil)
	eventually(t, "every replica resolves the policy", func() error { return everyReplicaQueues(ns, "before") })

	pid, args, err := apiServerProcess()
	if err != nil {
		t.Fatal(err)
	}
	// SIGTERM, and SIGKILL if its graceful shutdown (watches, in-flight requests) takes too long.
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	gone := func(d time.Duration) bool {
		for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d/cmdline", pid)); err != nil {
				return true
			}
		}
		return false
	}
	if !gone(15 * time.Second) {
		t.Log("kube-apiserver still shutting down after 15s: SIGKILL")
		_ = syscall.Kill(pid, syscall.SIGKILL)
		if !gone(30 * time.Second) {
			t.Fatal("kube-apiserver did not stop")
		}
	}
	down := time.Now()
	t.Log("kube-apiserver stopped")
	// While it is away, the replicas that run (a leader that could not renew exits) stay ready and
	// serve from the index they have.
	serving := 0
	for _, r := range replicas {
		if !r.proc.running() {
			continue
		}
		serving++
		if err := probe(bg, r.readyURL()); err != nil {
			t.Errorf("%s unready while the API server is away: %v", r.name, err)
		}
		if err := replicaQueues(r, ns, "before"); err != nil {
			t.Errorf("while the API server is away: %v", err)
		}
	}
	if serving == 0 {
		t.Error("no replica serves while the API server is away")
	}

	p, err := startProc("kube-apiserver-restarted", nil, args[0], args[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	procs = append(procs, p)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "kube-apiserver ready again", func() error {
		ctx, cancel := context.WithTimeout(bg, 2*time.Second)
		defer cancel()
		_, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err
	})
	t.Logf("kube-apiserver back after %v", time.Since(down).Round(100*time.Millisecond))

	// Changes right away, while the replicas' informers are still reconnecting.
	var pol v1alpha1.KaiwoPolicy
	eventually(t, "policy updated", func() error {
		if err := k8s.Get(bg, types.NamespacedName{Name: "e2e-apirestart"}, &pol); err != nil {
			return err
		}
		pol.Spec.Defaults.Queue = "after"
		return k8s.Update(bg, &pol)
	})
	eventually(t, "namespace relabelled", func() error {
		patch := []byte(`{"metadata":{"labels":{"kaiwo.silogen.ai/team":"e2e-apirestart"}}}`)
		_, err := cs.CoreV1().Namespaces().Patch(bg, moved, types.MergePatchType, patch, metav1.PatchOptions{})
		return err
	})

	for _, r := range replicas {
		if !r.proc.running() {
			t.Logf("%s exited while the API server was away (%v); restarting it", r.name, r.proc.err)
		}
	}
	ctx, cancel := context.WithTimeout(bg, 2*time.Minute)
	defer cancel()
	if err := startWebhook(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "every replica's index has the policy change", func() error { return everyReplicaQueues(ns, "after") })
	eventually(t, "every replica's index has the relabelled namespace", func() error { return everyReplicaQueues(moved, "after") })

	// And through the API server, as users see it.
	j := MakeJob("after-restart", moved).Annotate(annotations.GPUs, "1").Obj()
	mustCreate(t, j)
	if got := j.Labels[annotations.KueueQueueName]; got != "after" {
		t.Errorf("queue label %q after the restart, want after", got)
	}
	theLeader(t)
}

// everyReplicaQueues asks each replica directly (not through the balancer) to admit a Job in ns and
// checks the queue it puts the Job in.
func everyReplicaQueues(ns, queue string) error {
	for _, r := range replicas {
		if !r.proc.running() {
			return fmt.Errorf("%s is not running", r.name)
		}
		if err := replicaQueues(r, ns, queue); err != nil {
			return err
		}
	}
	return nil
}

func replicaQueues(r *replica, ns, queue string) error {
	resp, err := admitDirect(r, MakeJob("probe", ns).Annotate(annotations.GPUs, "1").Obj())
	if err != nil {
		return fmt.Errorf("%s: %w", r.name, err)
	}
	if !resp.Allowed {
		return fmt.Errorf("%s denied: %v", r.name, resp.Result)
	}
	want := fmt.Sprintf(`"kueue.x-k8s.io/queue-name":%q`, queue)
	if !strings.Contains(string(resp.Patch), want) {
		return fmt.Errorf("%s: patch has no %s: %s", r.name, want, resp.Patch)
	}
	return nil
}
