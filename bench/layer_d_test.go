package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	"github.com/silogen/kaiwo-webhook/internal/testenv"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
	"github.com/silogen/kaiwo-webhook/pkg/server"
)

// Namespaces of Layer D. config/webhook excludes kube-system and kaiwo-system by name, so a Job there
// never reaches our webhook: kaiwo-system has no mutation at all, kube-system (labelled bench=map) only
// the MutatingAdmissionPolicy.
const (
	nsWebhook = "bench-webhook"
	nsNone    = "kaiwo-system"
	nsMAP     = "kube-system"
)

// layerD: a real kube-apiserver (envtest) with the real webhook configuration and the real server.
func layerD(t *testing.T, r *report) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		r.note("D-apiserver", "not measured: KUBEBUILDER_ASSETS is not set (hack/bench.sh sets it from hack/envtest-assets.sh)")
		t.Fatal("KUBEBUILDER_ASSETS is not set; run make bench")
	}
	logf.SetLogger(logr.Discard())
	srv, err := testenv.StartServer("..")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	cfg := rest.CopyConfig(srv.Config)
	cfg.QPS, cfg.Burst = 1e6, 1e6 // measure the API server, not client-side rate limiting
	reg := srv.Registry
	ctx := context.Background()
	k8s, err := client.New(cfg, client.Options{Scheme: server.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	version := "unknown"
	if dc, err := discovery.NewDiscoveryClientForConfig(cfg); err == nil {
		if v, err := dc.ServerVersion(); err == nil {
			version = v.GitVersion
		}
	}

	// The bench policy, its namespace, and the MutatingAdmissionPolicy.
	pols, _, err := policy.Load(bytes.NewReader(PolicyYAML()))
	if err != nil {
		t.Fatal(err)
	}
	pol := pols[0]
	pol.ResourceVersion, pol.Generation = "", 0
	must(t, k8s.Create(ctx, &pol))
	must(t, k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsWebhook, Labels: map[string]string{"kaiwo.silogen.ai/team": "ml"}}}))
	must(t, k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsNone}}))
	var kubeSystem corev1.Namespace
	must(t, k8s.Get(ctx, client.ObjectKey{Name: nsMAP}, &kubeSystem))
	kubeSystem.Labels["bench"] = "map"
	must(t, k8s.Update(ctx, &kubeSystem))
	mapPolicy, binding := mutatingAdmissionPolicy(t)
	must(t, k8s.Create(ctx, mapPolicy))
	must(t, k8s.Create(ctx, binding))

	job8k, err := Load("job8k")
	if err != nil {
		t.Fatal(err)
	}
	create := func(ns string) (*unstructured.Unstructured, time.Duration, error) {
		u := &unstructured.Unstructured{}
		if err := json.Unmarshal(job8k.Raw, &u.Object); err != nil {
			return nil, 0, err
		}
		u.SetNamespace(ns)
		u.SetManagedFields(nil)
		start := time.Now()
		err := k8s.Create(ctx, u, client.DryRunAll)
		return u, time.Since(start), err
	}
	// Wait until each path mutates as it should: the policy index and the MutatingAdmissionPolicy
	// are both picked up asynchronously.
	checks := map[string]func(u *unstructured.Unstructured) error{
		nsWebhook: func(u *unstructured.Unstructured) error {
			if !strings.Contains(u.GetAnnotations()["kaiwo.silogen.ai/applied"], `"policy":"team-ml"`) {
				return fmt.Errorf("webhook: applied = %q", u.GetAnnotations()["kaiwo.silogen.ai/applied"])
			}
			return queued(u)
		},
		nsNone: func(u *unstructured.Unstructured) error {
			if _, ok := u.GetLabels()["kueue.x-k8s.io/queue-name"]; ok {
				return errors.New("none: mutated")
			}
			return nil
		},
		nsMAP: func(u *unstructured.Unstructured) error {
			if _, ok := u.GetAnnotations()["kaiwo.silogen.ai/applied"]; ok {
				return errors.New("map: the webhook was called")
			}
			return queued(u)
		},
	}
	order := []string{nsWebhook, nsNone, nsMAP}
	for _, ns := range order {
		deadline := time.Now().Add(time.Minute)
		for {
			u, _, err := create(ns)
			if err == nil {
				err = checks[ns](u)
			}
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v", ns, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	const warmup, n = 50, 500
	lat := map[string][]time.Duration{}
	var handler0, http0 [2]float64
	for i := range warmup + n {
		if i == warmup {
			handler0 = histogram(t, reg, "kaiwo_webhook_admission_duration_seconds", "result", "mutated")
			http0 = histogram(t, ctrlmetrics.Registry, "controller_runtime_webhook_latency_seconds", "webhook", server.MutatePath)
		}
		for j := range order {
			ns := order[(i+j)%len(order)] // rotate, so no configuration always goes first
			_, d, err := create(ns)
			if err != nil {
				t.Fatalf("create in %s: %v", ns, err)
			}
			if i >= warmup {
				lat[ns] = append(lat[ns], d)
			}
		}
	}
	p := func(ns string, q float64) time.Duration { return percentile(lat[ns], q) }
	// Server-side means over the timed creates: the Mutator alone, and the whole webhook HTTP handler.
	handler1 := histogram(t, reg, "kaiwo_webhook_admission_duration_seconds", "result", "mutated")
	http1 := histogram(t, ctrlmetrics.Registry, "controller_runtime_webhook_latency_seconds", "webhook", server.MutatePath)
	meanMS := func(a, b [2]float64) float64 { return round(1e3*(b[0]-a[0])/(b[1]-a[1]), 3) }
	handlerMS, httpMS := meanMS(handler0, handler1), meanMS(http0, http1)
	r.set("apiserver_create_p50_webhook_vs_none", float64(p(nsWebhook, 0.5))/float64(p(nsNone, 0.5)))
	r.set("apiserver_create_p50_webhook_vs_map", float64(p(nsWebhook, 0.5))/float64(p(nsMAP, 0.5)))

	r.finding("Through the API server (D), our webhook adds %.1f ms to a create at p50 (%s without, %s with); the MutatingAdmissionPolicy adds %.1f ms. "+
		"Of the webhook's share, the server spent %.2f ms per request on average in the whole HTTP handler (controller-runtime's histogram), %.2f ms of it in `server.Mutator`; "+
		"the rest is the API server's side of the call (the review encoded, the TLS round trip, the patch applied and the object decoded again).",
		msf(p(nsWebhook, 0.5)-p(nsNone, 0.5)), ms(p(nsNone, 0.5)), ms(p(nsWebhook, 0.5)), msf(p(nsMAP, 0.5)-p(nsNone, 0.5)), httpMS, handlerMS)
	var b strings.Builder
	b.WriteString("## D. A real kube-apiserver\n\n")
	fmt.Fprintf(&b, "envtest with kube-apiserver %s and etcd from `hack/envtest-assets.sh`; the webhook configuration is `config/webhook` as users install it, ", version)
	b.WriteString("pointed by envtest at the real server (`server.NewManager`) in the test process, with the bench KaiwoPolicy (team-ml) in the cluster. ")
	fmt.Fprintf(&b, "%d creates with `dryRun=All` of the 8 KB kubectl-applied Job per configuration after %d warm-up rounds, one at a time, the three configurations interleaved: ", n, warmup)
	b.WriteString("**webhook** in a namespace the policy selects (the full mutation, 30-odd patch operations), **none** in `kaiwo-system`, which the webhook configuration excludes, ")
	b.WriteString("and **MAP** in `kube-system` (also excluded), where a `MutatingAdmissionPolicy` (admissionregistration.k8s.io/v1, GA and on by default since 1.36; ")
	b.WriteString("`bench/testdata/map.yaml`) sets the queue label and suspend with CEL, with the webhook's own match conditions. ")
	b.WriteString("Every configuration's result is checked before timing (mutated, not mutated, queued without the webhook).\n\n")
	b.WriteString("| | none | webhook | MAP (queue + suspend only) | webhook / none | webhook / MAP |\n|---|---|---|---|---|---|\n")
	for _, q := range []struct {
		name string
		q    float64
	}{{"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}} {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %.2fx | %.2fx |\n", q.name, ms(p(nsNone, q.q)), ms(p(nsWebhook, q.q)), ms(p(nsMAP, q.q)),
			float64(p(nsWebhook, q.q))/float64(p(nsNone, q.q)), float64(p(nsWebhook, q.q))/float64(p(nsMAP, q.q)))
	}
	b.WriteString("\n")
	r.section("D-apiserver", b.String())
	r.detail("apiserver", map[string]any{
		"version":                version,
		"p50_ms":                 map[string]float64{"none": msf(p(nsNone, 0.5)), "webhook": msf(p(nsWebhook, 0.5)), "map": msf(p(nsMAP, 0.5))},
		"p99_ms":                 map[string]float64{"none": msf(p(nsNone, 0.99)), "webhook": msf(p(nsWebhook, 0.99)), "map": msf(p(nsMAP, 0.99))},
		"creates":                n,
		"p99_webhook_vs_none":    round(float64(p(nsWebhook, 0.99))/float64(p(nsNone, 0.99)), 3),
		"p50_map_vs_none":        round(float64(p(nsMAP, 0.5))/float64(p(nsNone, 0.5)), 3),
		"server_http_mean_ms":    httpMS,
		"server_mutator_mean_ms": handlerMS,
	})
}

func queued(u *unstructured.Unstructured) error {
	suspend, _, _ := unstructured.NestedBool(u.Object, "spec", "suspend")
	if u.GetLabels()["kueue.x-k8s.io/queue-name"] != "team-ml" || !suspend {
		return fmt.Errorf("not queued: labels %v, suspend %v", u.GetLabels(), suspend)
	}
	return nil
}

// mutatingAdmissionPolicy reads testdata/map.yaml and gives the policy the match conditions of the
// jobs webhook in config/webhook.
func mutatingAdmissionPolicy(t *testing.T) (*admissionregistrationv1.MutatingAdmissionPolicy, *admissionregistrationv1.MutatingAdmissionPolicyBinding) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "map.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(b), "\n---\n")
	var p admissionregistrationv1.MutatingAdmissionPolicy
	var binding admissionregistrationv1.MutatingAdmissionPolicyBinding
	must(t, yaml.UnmarshalStrict([]byte(docs[0]), &p))
	must(t, yaml.UnmarshalStrict([]byte(docs[1]), &binding))
	cfgYAML, err := os.ReadFile(filepath.Join("..", "config", "webhook", "mutating_webhook.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg admissionregistrationv1.MutatingWebhookConfiguration
	must(t, yaml.Unmarshal(cfgYAML, &cfg))
	for _, w := range cfg.Webhooks {
		if w.Name == "jobs.kaiwo.silogen.ai" {
			p.Spec.MatchConditions = w.MatchConditions
		}
	}
	if len(p.Spec.MatchConditions) == 0 {
		t.Fatal("config/webhook has no match conditions for jobs.kaiwo.silogen.ai")
	}
	return &p, &binding
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// histogram returns the sum and count of the histogram name in g whose label key is value.
func histogram(t *testing.T, g prometheus.Gatherer, name, key, value string) [2]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out [2]float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == key && l.GetValue() == value {
					out[0] += m.GetHistogram().GetSampleSum()
					out[1] += float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
	}
	return out
}
