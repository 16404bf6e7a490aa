package manifests_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// The server's defaults of --shutdown-delay and --graceful-shutdown-timeout (cmd/webhook/serve.go),
// which the manifests do not override.
const (
	shutdownDelaySeconds    = 5
	gracefulShutdownSeconds = 15
)

// checkSpread: replicas must spread over nodes (required), counted per revision so a rolling update
// is not blocked by the old pods, and a node the pod cannot tolerate is no domain.
func checkSpread(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	tsc := d.Spec.Template.Spec.TopologySpreadConstraints
	if len(tsc) != 1 {
		t.Fatalf("want one topology spread constraint, got %+v", tsc)
	}
	c := tsc[0]
	if c.MaxSkew != 1 || c.TopologyKey != "kubernetes.io/hostname" || c.WhenUnsatisfiable != corev1.DoNotSchedule {
		t.Errorf("spread %+v: want maxSkew 1 on kubernetes.io/hostname, DoNotSchedule", c)
	}
	if ptr.Deref(c.NodeTaintsPolicy, corev1.NodeInclusionPolicyIgnore) != corev1.NodeInclusionPolicyHonor {
		t.Errorf("nodeTaintsPolicy %v: want Honor, else a tainted node (a control plane) counts as an empty domain and blocks scheduling", c.NodeTaintsPolicy)
	}
	if !slices.Equal(c.MatchLabelKeys, []string{"pod-template-hash"}) {
		t.Errorf("matchLabelKeys %v: want [pod-template-hash] (spread per revision)", c.MatchLabelKeys)
	}
	if c.LabelSelector == nil || !labels.SelectorFromSet(c.LabelSelector.MatchLabels).Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("spread selector %v does not select the pods %v", c.LabelSelector, d.Spec.Template.Labels)
	}
}

// TestShutdownAndPriority: the webhook is scheduled as a critical add-on, and its pod's grace period
// covers the preStop sleep, the server's drain delay and its time to finish requests in flight.
func TestShutdownAndPriority(t *testing.T) {
	for name, objs := range renders(t) {
		t.Run(name, func(t *testing.T) {
			pod := into[appsv1.Deployment](t, find(t, objs, "Deployment", serviceName)).Spec.Template.Spec
			if pod.PriorityClassName != "system-cluster-critical" {
				t.Errorf("priorityClassName %q, want system-cluster-critical", pod.PriorityClassName)
			}
			c := pod.Containers[0]
			if slices.ContainsFunc(c.Args, func(a string) bool {
				return strings.HasPrefix(a, "--shutdown-delay") || strings.HasPrefix(a, "--graceful-shutdown-timeout")
			}) {
				t.Fatalf("args %q override the drain durations this test assumes", c.Args)
			}
			if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Sleep.Seconds < 1 {
				t.Fatalf("want a preStop sleep (endpoints propagate while the pod still serves), got %+v", c.Lifecycle)
			}
			need := c.Lifecycle.PreStop.Sleep.Seconds + shutdownDelaySeconds + gracefulShutdownSeconds
			if got := ptr.Deref(pod.TerminationGracePeriodSeconds, 30); got < need {
				t.Errorf("terminationGracePeriodSeconds %d < preStop %ds + shutdown delay %ds + graceful shutdown %ds",
					got, c.Lifecycle.PreStop.Sleep.Seconds, shutdownDelaySeconds, gracefulShutdownSeconds)
			}
		})
	}
}

// TestNetworkPolicy: only the webhook and metrics ports of the webhook pods take connections.
func TestNetworkPolicy(t *testing.T) {
	for name, objs := range renders(t) {
		t.Run(name, func(t *testing.T) {
			np := into[networkingv1.NetworkPolicy](t, find(t, objs, "NetworkPolicy", serviceName))
			d := into[appsv1.Deployment](t, find(t, objs, "Deployment", serviceName))
			if !labels.SelectorFromSet(np.Spec.PodSelector.MatchLabels).Matches(labels.Set(d.Spec.Template.Labels)) || len(np.Spec.PodSelector.MatchExpressions) > 0 {
				t.Errorf("podSelector %+v does not select the webhook pods %v", np.Spec.PodSelector, d.Spec.Template.Labels)
			}
			if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
				t.Errorf("policyTypes %v, want [Ingress]", np.Spec.PolicyTypes)
			}
			var ports []int32
			for _, rule := range np.Spec.Ingress {
				if len(rule.Ports) == 0 {
					t.Errorf("ingress rule %+v admits every port", rule)
				}
				for _, p := range rule.Ports {
					if p.Port == nil || p.EndPort != nil {
						t.Errorf("ingress port %+v: want one named port", p)
						continue
					}
					ports = append(ports, containerPort(d, *p.Port))
				}
			}
			slices.Sort(ports)
			if !slices.Equal(ports, []int32{8443, 9443}) {
				t.Errorf("NetworkPolicy admits container ports %v, want the webhook's 9443 and the metrics' 8443 only", ports)
			}
		})
	}
}

// TestImageTagIsTheRelease: both installs run the chart's appVersion, a release tag, never latest.
func TestImageTagIsTheRelease(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartDir(t), "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(b, &chart); err != nil {
		t.Fatal(err)
	}
	if chart.AppVersion == "" || chart.AppVersion == "latest" {
		t.Fatalf("Chart.yaml appVersion %q: want a release version", chart.AppVersion)
	}
	want := "ghcr.io/silogen/kaiwo-webhook:" + chart.AppVersion
	for name, objs := range renders(t) {
		if got := into[appsv1.Deployment](t, find(t, objs, "Deployment", serviceName)).Spec.Template.Spec.Containers[0].Image; got != want {
			t.Errorf("%s: image %q, want %q (the chart's appVersion)", name, got, want)
		}
	}
}

func TestChartAvailabilityValues(t *testing.T) {
	t.Run("spread preference", func(t *testing.T) {
		objs := renderChart(t, map[string]any{"topologySpread": map[string]any{"whenUnsatisfiable": "ScheduleAnyway"}})
		tsc := into[appsv1.Deployment](t, find(t, objs, "Deployment", "")).Spec.Template.Spec.TopologySpreadConstraints
		if len(tsc) != 1 || tsc[0].WhenUnsatisfiable != corev1.ScheduleAnyway {
			t.Errorf("spread %+v, want ScheduleAnyway", tsc)
		}
		if _, err := tryRenderChart(t, map[string]any{"topologySpread": map[string]any{"whenUnsatisfiable": "Never"}}); err == nil || !strings.Contains(err.Error(), "schema") {
			t.Errorf("whenUnsatisfiable Never: want a values schema error, got %v", err)
		}
	})
	t.Run("grace period too short", func(t *testing.T) {
		_, err := tryRenderChart(t, map[string]any{"preStopSleepSeconds": 20, "terminationGracePeriodSeconds": 30})
		if err == nil || !strings.Contains(err.Error(), "terminationGracePeriodSeconds (30) must be at least preStopSleepSeconds + 20 (40)") {
			t.Errorf("want a render error naming terminationGracePeriodSeconds, got %v", err)
		}
		if _, err := tryRenderChart(t, map[string]any{"preStopSleepSeconds": 0}); err == nil || !strings.Contains(err.Error(), "schema") {
			t.Errorf("preStopSleepSeconds 0: want a values schema error, got %v", err)
		}
	})
	t.Run("networkPolicy off", func(t *testing.T) {
		if slices.Contains(kinds(renderChart(t, map[string]any{"networkPolicy": map[string]any{"enabled": false}})), "NetworkPolicy") {
			t.Error("NetworkPolicy rendered with networkPolicy.enabled=false")
		}
	})
	t.Run("serviceMonitor scrapes https with a token", func(t *testing.T) {
		objs := renderChart(t, map[string]any{"serviceMonitor": map[string]any{"enabled": true}})
		eps, _, _ := unstructured.NestedSlice(find(t, objs, "ServiceMonitor", serviceName).Object, "spec", "endpoints")
		if len(eps) != 1 {
			t.Fatalf("endpoints %v", eps)
		}
		ep := eps[0].(map[string]any)
		if ep["scheme"] != "https" || ep["bearerTokenFile"] != "/var/run/secrets/kubernetes.io/serviceaccount/token" {
			t.Errorf("endpoint %v: want https with the ServiceAccount token", ep)
		}
		dnsNames, _, _ := unstructured.NestedStringSlice(find(t, objs, "Certificate", "").Object, "spec", "dnsNames")
		secret, _, _ := unstructured.NestedString(find(t, objs, "Certificate", "").Object, "spec", "secretName")
		tlsConfig, _ := ep["tlsConfig"].(map[string]any)
		serverName, _ := tlsConfig["serverName"].(string)
		if !slices.Contains(dnsNames, serverName) {
			t.Errorf("tlsConfig.serverName %q is not in the serving certificate's dnsNames %v", serverName, dnsNames)
		}
		ca, _, _ := unstructured.NestedStringMap(tlsConfig, "ca", "secret")
		if diff := cmp.Diff(map[string]string{"name": secret, "key": "ca.crt"}, ca); diff != "" {
			t.Errorf("tlsConfig.ca.secret (-want,+got):\n%s", diff)
		}
		objs = renderChart(t, map[string]any{"serviceMonitor": map[string]any{"enabled": true, "tlsConfig": map[string]any{"insecureSkipVerify": true}}})
		eps, _, _ = unstructured.NestedSlice(find(t, objs, "ServiceMonitor", serviceName).Object, "spec", "endpoints")
		if diff := cmp.Diff(map[string]any{"insecureSkipVerify": true}, eps[0].(map[string]any)["tlsConfig"]); diff != "" {
			t.Errorf("tlsConfig override (-want,+got):\n%s", diff)
		}
	})
	t.Run("metrics port is the named container port", func(t *testing.T) {
		d := into[appsv1.Deployment](t, find(t, renderChart(t, nil), "Deployment", ""))
		if containerPort(d, intstr.FromString("metrics")) != 8443 {
			t.Error("no metrics container port 8443")
		}
	})
}
