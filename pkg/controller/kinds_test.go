package controller_test

import (
	"context"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fakediscovery "k8s.io/client-go/discovery/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/silogen/kaiwo-webhook/pkg/controller"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
)

// TestKindsWatch: a kind whose CRD is not installed (KubeRay's here) is reported as not served, in the log
// and the gauge, while the others are served; once the CRD is installed the next check says so.
func TestKindsWatch(t *testing.T) {
	d := &fakediscovery.FakeDiscovery{Fake: &clienttesting.Fake{}}
	d.Resources = []*metav1.APIResourceList{
		{GroupVersion: "batch/v1", APIResources: []metav1.APIResource{{Name: "jobs"}, {Name: "cronjobs"}}},
		{GroupVersion: "apps/v1", APIResources: []metav1.APIResource{{Name: "deployments"}, {Name: "replicasets"}, {Name: "statefulsets"}, {Name: "daemonsets"}}},
		{GroupVersion: "v1", APIResources: []metav1.APIResource{{Name: "pods"}}},
	}
	served := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kaiwo_webhook_kind_served"}, []string{"group", "version", "kind", "handled"})
	var logs []string
	w := &controller.KindsWatch{Kinds: mutate.Builtin(), Discovery: d, Served: served,
		Log: funcr.New(func(prefix, args string) { logs = append(logs, args) }, funcr.Options{})}
	if w.Check(context.Background()) {
		t.Fatal("every kind served without KubeRay's CRDs")
	}
	gauge := func(group, kind, handled string) float64 {
		return testutil.ToFloat64(served.WithLabelValues(group, "v1", kind, handled))
	}
	for _, c := range []struct {
		group, kind, handled string
		want                 float64
	}{
		{"batch", "Job", "true", 1}, {"apps", "Deployment", "true", 1},
		{"ray.io", "RayJob", "true", 0}, {"ray.io", "RayService", "true", 0},
		{"", "Pod", "true", 1}, {"apps", "DaemonSet", "false", 1}, {"ray.io", "RayCluster", "false", 0},
	} {
		if got := gauge(c.group, c.kind, c.handled); got != c.want {
			t.Errorf("kaiwo_webhook_kind_served %s %s: %v, want %v", c.group, c.kind, got, c.want)
		}
	}
	if len(logs) != 1 || !strings.Contains(logs[0], `"notServed"=["ray.io/v1 RayJob" "ray.io/v1 RayService" "ray.io/v1 RayCluster"]`) ||
		!strings.Contains(logs[0], `"batch/v1 Job"`) {
		t.Errorf("log: %q, want one line naming the handled kinds and KubeRay's as not served", logs)
	}
	w.Check(context.Background())
	if len(logs) != 1 {
		t.Errorf("an unchanged check logged again: %q", logs)
	}

	d.Resources = append(d.Resources, &metav1.APIResourceList{GroupVersion: "ray.io/v1",
		APIResources: []metav1.APIResource{{Name: "rayjobs"}, {Name: "rayservices"}, {Name: "rayclusters"}}})
	if !w.Check(context.Background()) {
		t.Error("KubeRay's CRDs installed: not every kind served")
	}
	if got := gauge("ray.io", "RayJob", "true"); got != 1 {
		t.Errorf("RayJob after its CRD was installed: %v, want 1", got)
	}
	if len(logs) != 2 || !strings.Contains(logs[1], `"notServed"=[]`) {
		t.Errorf("log after the change: %q", logs)
	}
}
