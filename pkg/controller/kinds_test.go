package controller_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fakediscovery "k8s.io/client-go/discovery/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/silogen/kaiwo-webhook/pkg/controller"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
)

// TestKindsWatch: a kind whose CRD is not installed (KubeRay's here) is reported as not served, in the log
// and the gauge, while the others are served; once the CRD is installed the next check says so.
func TestKindsWatch(t *testing.T) {
	// Every kind of the registry is served but KubeRay's.
	kinds := mutate.Builtin()
	byGV := map[string][]metav1.APIResource{}
	var rayResources []metav1.APIResource
	var notServed []string
	add := func(gvk schema.GroupVersionKind, resource string) {
		if gvk.Group == "ray.io" {
			rayResources = append(rayResources, metav1.APIResource{Name: resource})
			notServed = append(notServed, fmt.Sprintf("%q", gvk.GroupVersion().String()+" "+gvk.Kind))
			return
		}
		byGV[gvk.GroupVersion().String()] = append(byGV[gvk.GroupVersion().String()], metav1.APIResource{Name: resource})
	}
	for _, k := range kinds.Kinds() {
		add(k.GVK, k.Resource)
	}
	for _, u := range kinds.Unhandled() {
		add(u.GVK, u.Resource)
	}
	d := &fakediscovery.FakeDiscovery{Fake: &clienttesting.Fake{}}
	for gv, rs := range byGV {
		d.Resources = append(d.Resources, &metav1.APIResourceList{GroupVersion: gv, APIResources: rs})
	}
	served := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kaiwo_webhook_kind_served"}, []string{"group", "version", "kind", "handled"})
	var logs []string
	w := &controller.KindsWatch{Kinds: kinds, Discovery: d, Served: served,
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
		{"ray.io", "RayCluster", "true", 0}, {"", "Pod", "true", 1}, {"apps", "DaemonSet", "false", 1},
	} {
		if got := gauge(c.group, c.kind, c.handled); got != c.want {
			t.Errorf("kaiwo_webhook_kind_served %s %s: %v, want %v", c.group, c.kind, got, c.want)
		}
	}
	if len(logs) != 1 || !strings.Contains(logs[0], `"notServed"=[`+strings.Join(notServed, " ")+`]`) ||
		!strings.Contains(logs[0], `"batch/v1 Job"`) {
		t.Errorf("log: %q, want one line naming the handled kinds and KubeRay's as not served", logs)
	}
	w.Check(context.Background())
	if len(logs) != 1 {
		t.Errorf("an unchanged check logged again: %q", logs)
	}

	d.Resources = append(d.Resources, &metav1.APIResourceList{GroupVersion: "ray.io/v1", APIResources: rayResources})
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
