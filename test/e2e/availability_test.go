package e2e

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	kueue "sigs.k8s.io/kueue/apis/kueue/v1beta2"

	"github.com/silogen/kaiwo-webhook/api/v1alpha1"
	. "github.com/silogen/kaiwo-webhook/internal/testobj"
	"github.com/silogen/kaiwo-webhook/pkg/annotations"
)

var leaderMetric = regexp.MustCompile(`(?m)^leader_election_master_status\{name="` + regexp.QuoteMeta(leaseName) + `"\} (\d)`)

// metricsToken is a ServiceAccount token bound to the metrics-reader ClusterRole of config/webhook.
func metricsToken(t *testing.T, name string, bind bool) string {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: kaiwoNS, Name: name}}
	mustCreate(t, sa)
	if bind {
		mustCreate(t, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "kaiwo-webhook-metrics-reader"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: kaiwoNS, Name: name}},
		})
	}
	tr := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}
	if err := k8s.SubResource("token").Create(bg, sa, tr); err != nil {
		t.Fatalf("token for %s: %v", name, err)
	}
	return tr.Status.Token
}

var scraperToken string

// leaders returns, per replica, whether its metrics say it holds the lease (-1: unreachable).
func leaders(t *testing.T) []int {
	t.Helper()
	if scraperToken == "" {
		scraperToken = metricsToken(t, "e2e-scraper", true)
	}
	out := make([]int, len(replicas))
	for i, r := range replicas {
		out[i] = -1
		if !r.proc.running() {
			continue
		}
		code, body, err := metricsGet(bg, r, scraperToken)
		if err != nil || code != http.StatusOK {
			continue
		}
		out[i] = 0
		if m := leaderMetric.FindStringSubmatch(body); m != nil && m[1] == "1" {
			out[i] = 1
		}
	}
	return out
}

// theLeader waits until exactly one running replica leads, and returns it.
func theLeader(t *testing.T) int {
	t.Helper()
	leader := -1
	eventually(t, "exactly one replica leads", func() error {
		ls := leaders(t)
		leader = -1
		for i, l := range ls {
			if l == 1 {
				if leader >= 0 {
					return fmt.Errorf("two leaders: %v", ls)
				}
				leader = i
			}
		}
		if leader < 0 {
			return fmt.Errorf("no leader: %v", ls)
		}
		return nil
	})
	return leader
}

// Scenario: both replicas are ready and routed to (the policy index runs on every replica, not only
// on the leader), one of them leads, and the metrics answer only an authorized scraper.
func TestBothReplicasServe(t *testing.T) {
	for _, r := range replicas {
		if err := probe(bg, r.readyURL()); err != nil {
			t.Errorf("%s not ready: %v", r.name, err)
		}
	}
	eventually(t, "the balancer routes to both replicas", func() error {
		if n := lb.readyCount(); n != 2 {
			return fmt.Errorf("%d ready backends", n)
		}
		return nil
	})
	theLeader(t)

	unbound := metricsToken(t, "e2e-not-a-scraper", false)
	for _, r := range replicas {
		if code, body, err := metricsGet(bg, r, ""); err != nil || code != http.StatusUnauthorized {
			t.Errorf("%s metrics without a token: %d %v %.80q, want 401", r.name, code, err, body)
		}
		if code, body, err := metricsGet(bg, r, unbound); err != nil || code != http.StatusForbidden {
			t.Errorf("%s metrics with a token not allowed /metrics: %d %v %.80q, want 403", r.name, code, err, body)
		}
		if code, body, err := metricsGet(bg, r, scraperToken); err != nil || code != http.StatusOK || !strings.Contains(body, "leader_election_master_status") {
			t.Errorf("%s metrics for the metrics-reader: %d %v, want 200 with the metrics", r.name, code, err)
		}
	}
}

// Scenario: the leader is killed (SIGKILL, no lease release); the other replica takes the lease
// within the lease duration and its LocalQueue controller creates the LocalQueue a policy asks for,
// while admissions go on through the remaining replica.
func TestLeaderFailover(t *testing.T) {
	clusterQueue(t, "cq-failover", 8)
	policy(t, "e2e-failover", map[string]string{"kaiwo.silogen.ai/team": "e2e-failover"}, &v1alpha1.PolicyDefaults{Queue: "failover-lq"}, "cq-failover")
	leader := theLeader(t)
	other := 1 - leader
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(bg, time.Minute)
		defer cancel()
		if err := startWebhook(ctx); err != nil {
			t.Errorf("restarting the killed replica: %v", err)
		}
	})

	killed := time.Now()
	replicas[leader].kill()
	t.Logf("killed the leader %s", replicas[leader].name)

	// Admission does not wait for the lease: the other replica serves at once.
	j := MakeJob("during-failover", "default").Annotate(annotations.GPUs, "1").Obj()
	mustCreate(t, j, client.DryRunAll)
	if gpuLimit(j.Spec.Template.Spec.Containers[0]) != 1 {
		t.Errorf("Job during failover not mutated")
	}

	var took time.Duration
	eventually(t, replicas[other].name+" takes the lease", func() error {
		if ls := leaders(t); ls[other] != 1 {
			return fmt.Errorf("leaders %v", ls)
		}
		took = time.Since(killed)
		return nil
	})
	t.Logf("failover: %s leads %v after the kill (lease duration %v, retry period %v)", replicas[other].name, took.Round(100*time.Millisecond), leaseDuration, retryPeriod)
	// A candidate sees the lease expire leaseDuration after it last saw it renewed; it looks every
	// retryPeriod with client-go's jitter (up to 2.2 periods), once to see the last renewal and once
	// to take the expired lease. Our metrics poll adds a moment.
	if bound := leaseDuration + 2*22*retryPeriod/10 + time.Second; took > bound {
		t.Errorf("failover took %v, more than the lease duration and two jittered retry periods (%v)", took, bound)
	}

	ns := "e2e-failover"
	namespace(t, ns, map[string]string{"kaiwo.silogen.ai/team": "e2e-failover"})
	eventually(t, "the new leader creates the policy's LocalQueue", func() error {
		var lq kueue.LocalQueue
		return k8s.Get(bg, types.NamespacedName{Namespace: ns, Name: "failover-lq"}, &lq)
	})
}

// Scenario: a rolling restart (SIGTERM one replica, start it again, wait until ready, then the
// other; repeated) under a steady stream of creates: every create succeeds and is mutated.
func TestRollingRestartLosesNoAdmission(t *testing.T) {
	const (
		rate     = 12 // creates per second
		duration = 60 * time.Second
		inFlight = 16
	)
	ns := "e2e-rolling"
	namespace(t, ns, nil)
	var (
		sent, ok atomic.Int64
		mu       sync.Mutex
		failures []string
		wg       sync.WaitGroup
	)
	fail := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, s)
	}
	slots := make(chan struct{}, inFlight)
	stop := make(chan struct{})
	streamDone := make(chan struct{})
	go func() {
		defer close(streamDone)
		tick := time.NewTicker(time.Second / rate)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				wg.Wait()
				return
			case <-tick.C:
			}
			slots <- struct{}{}
			sent.Add(1)
			wg.Add(1)
			go func(i int) {
				defer func() { <-slots; wg.Done() }()
				j := MakeJob(fmt.Sprintf("j-%d", i), ns).Annotate(annotations.GPUs, "1").Annotate(annotations.Queueing, "none").Obj()
				ctx, cancel := context.WithTimeout(bg, 30*time.Second)
				defer cancel()
				if err := k8s.Create(ctx, j); err != nil {
					fail(fmt.Sprintf("%s at %s: %v", j.Name, time.Now().Format("15:04:05.000"), err))
					return
				}
				if err := mutatedJob(j); err != nil {
					fail(fmt.Sprintf("%s: %v", j.Name, err))
					return
				}
				ok.Add(1)
			}(i)
		}
	}()

	start := time.Now()
	refusedBefore := lb.refused.Load()
	restarts := 0
	time.Sleep(3 * time.Second)
	for time.Since(start) < duration-15*time.Second {
		for _, r := range replicas {
			r.proc.stop() // SIGTERM: unready, drain, stop
			if err := r.start(); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(bg, time.Minute)
			err := r.waitReady(ctx)
			if err == nil {
				// As a rollout waits for the new pod to be Ready, and so in the endpoints, before it
				// terminates the next: the balancer learns readiness one poll later.
				err = lb.waitRouting(ctx, len(replicas))
			}
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			restarts++
		}
	}
	if rest := duration - time.Since(start); rest > 0 {
		time.Sleep(rest)
	}
	close(stop)
	<-streamDone
	elapsed := time.Since(start)
	t.Logf("%d creates in %v (%.1f/s), %d replica restarts, %d mutated, %d failed; balancer refused %d connections",
		sent.Load(), elapsed.Round(time.Second), float64(sent.Load())/elapsed.Seconds(), restarts, ok.Load(), len(failures), lb.refused.Load()-refusedBefore)
	for i, f := range failures {
		if i == 10 {
			t.Errorf("... and %d more", len(failures)-10)
			break
		}
		t.Errorf("lost admission: %s", f)
	}
	if ok.Load() != sent.Load() || sent.Load() < int64(rate*duration/time.Second)*9/10 {
		t.Errorf("%d of %d creates mutated, want all of at least %d", ok.Load(), sent.Load(), int64(rate*duration/time.Second)*9/10)
	}
	if restarts < 2 {
		t.Errorf("%d replica restarts, want at least one of each", restarts)
	}
}

// mutatedJob checks what the webhook does to a Job asking for 1 GPU without queueing.
func mutatedJob(j *batchv1.Job) error {
	if j.Labels[annotations.Managed] != "true" {
		return fmt.Errorf("not mutated: labels %v", j.Labels)
	}
	if got := gpuLimit(j.Spec.Template.Spec.Containers[0]); got != 1 {
		return fmt.Errorf("GPU limit %d, want 1", got)
	}
	return nil
}

// Scenario: a leader that shuts down (SIGTERM) releases its lease, so the other replica leads within
// a retry period of its exit instead of waiting for the lease to run out.
func TestLeaderReleasesLeaseOnShutdown(t *testing.T) {
	leader := theLeader(t)
	other := 1 - leader
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(bg, time.Minute)
		defer cancel()
		if err := startWebhook(ctx); err != nil {
			t.Errorf("restarting the stopped replica: %v", err)
		}
	})
	replicas[leader].proc.stop()
	exited := time.Now()
	var took time.Duration
	eventually(t, replicas[other].name+" takes the lease", func() error {
		if ls := leaders(t); ls[other] != 1 {
			return fmt.Errorf("leaders %v", ls)
		}
		took = time.Since(exited)
		return nil
	})
	t.Logf("%s leads %v after the leader exited (lease duration %v)", replicas[other].name, took.Round(100*time.Millisecond), leaseDuration)
	// Without the release it would wait for the lease, renewed every retry period until the exit, to
	// run out: at least leaseDuration - retryPeriod after the exit. Released, the candidate takes it at
	// its next try (at most 2.2 retry periods with jitter).
	if took >= leaseDuration-2*retryPeriod {
		t.Errorf("took %v after the exit: the lease was not released", took)
	}
}
