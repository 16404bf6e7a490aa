package manifests_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

var update = flag.Bool("update", false, "copy config/crd's CRD into the chart's files/")

// TestChartLint is `helm lint --strict` with the default values and with the
// values the other tests set.
func TestChartLint(t *testing.T) {
	for name, values := range map[string]map[string]any{
		"defaults":        nil,
		"everything":      {"serviceMonitor": map[string]any{"enabled": true}, "policies": []any{samplePolicyValue(t)}},
		"existing issuer": {"certManager": map[string]any{"issuer": map[string]any{"create": false, "name": "ca", "kind": "ClusterIssuer"}}},
		"one replica":     {"replicaCount": 1, "crds": map[string]any{"install": false}},
	} {
		t.Run(name, func(t *testing.T) {
			for _, m := range lintChart(t, values) {
				t.Error(m)
			}
		})
	}
}

// samplePolicyValue is config/samples/kaiwopolicy-default.yaml as a chart
// policies entry.
func samplePolicyValue(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), "config", "samples", "kaiwopolicy-default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Metadata struct{ Name string }
		Spec     map[string]any
	}
	if err := yaml.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return map[string]any{"name": p.Metadata.Name, "spec": p.Spec}
}

func TestChartValues(t *testing.T) {
	t.Run("serviceMonitor", func(t *testing.T) {
		if slices.Contains(kinds(renderChart(t, nil)), "ServiceMonitor") {
			t.Error("ServiceMonitor rendered by default")
		}
		objs := renderChart(t, map[string]any{"serviceMonitor": map[string]any{"enabled": true}})
		sm := find(t, objs, "ServiceMonitor", serviceName)
		if sm.GetAPIVersion() != "monitoring.coreos.com/v1" {
			t.Errorf("ServiceMonitor apiVersion %s", sm.GetAPIVersion())
		}
		sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
		svc := find(t, objs, "Service", serviceName)
		if len(sel) == 0 || !labels.SelectorFromSet(sel).Matches(labels.Set(svc.GetLabels())) {
			t.Errorf("ServiceMonitor selector %v does not select the Service %v", sel, svc.GetLabels())
		}
		eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		if len(eps) != 1 || eps[0].(map[string]any)["port"] != "metrics" {
			t.Errorf("ServiceMonitor endpoints %v, want the metrics port", eps)
		}
	})
	t.Run("existing issuer", func(t *testing.T) {
		objs := renderChart(t, map[string]any{"certManager": map[string]any{"issuer": map[string]any{"create": false, "name": "corp-ca", "kind": "ClusterIssuer"}}})
		if slices.Contains(kinds(objs), "Issuer") {
			t.Error("Issuer rendered with certManager.issuer.create=false")
		}
		ref, _, _ := unstructured.NestedStringMap(find(t, objs, "Certificate", "").Object, "spec", "issuerRef")
		if diff := cmp.Diff(map[string]string{"group": "cert-manager.io", "kind": "ClusterIssuer", "name": "corp-ca"}, ref); diff != "" {
			t.Errorf("issuerRef (-want,+got):\n%s", diff)
		}
		if _, err := tryRenderChart(t, map[string]any{"certManager": map[string]any{"issuer": map[string]any{"create": false}}}); err == nil ||
			!strings.Contains(err.Error(), "certManager.issuer.name is required") {
			t.Errorf("no issuer name: want a render error naming certManager.issuer.name, got %v", err)
		}
	})
	t.Run("failurePolicy", func(t *testing.T) {
		objs := renderChart(t, map[string]any{"failurePolicy": "Ignore"})
		for _, w := range into[admissionregistrationv1.MutatingWebhookConfiguration](t, find(t, objs, "MutatingWebhookConfiguration", "")).Webhooks {
			if ptr.Deref(w.FailurePolicy, "") != admissionregistrationv1.Ignore {
				t.Errorf("%s: failurePolicy %v, want Ignore", w.Name, ptr.Deref(w.FailurePolicy, ""))
			}
		}
		for _, w := range into[admissionregistrationv1.ValidatingWebhookConfiguration](t, find(t, objs, "ValidatingWebhookConfiguration", "")).Webhooks {
			want := admissionregistrationv1.Ignore // the workload validators follow the value
			if w.Name == "kaiwopolicies.kaiwo.silogen.ai" {
				want = admissionregistrationv1.Fail // KaiwoPolicy validation fails closed
			}
			if got := ptr.Deref(w.FailurePolicy, ""); got != want {
				t.Errorf("%s: failurePolicy %v, want %v", w.Name, got, want)
			}
		}
	})
	t.Run("values schema", func(t *testing.T) {
		for _, values := range []map[string]any{
			{"failurePolicy": "Warn"},
			{"replicaCount": 0},
			{"certManager": map[string]any{"issuer": map[string]any{"kind": "Certificate"}}},
		} {
			if _, err := tryRenderChart(t, values); err == nil || !strings.Contains(err.Error(), "schema") {
				t.Errorf("%v: want a values schema error, got %v", values, err)
			}
		}
	})
	t.Run("crds.install", func(t *testing.T) {
		crd := find(t, renderChart(t, nil), "CustomResourceDefinition", "kaiwopolicies.kaiwo.silogen.ai")
		if crd.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
			t.Errorf("CRD annotations %v: want helm.sh/resource-policy: keep", crd.GetAnnotations())
		}
		if slices.Contains(kinds(renderChart(t, map[string]any{"crds": map[string]any{"install": false}})), "CustomResourceDefinition") {
			t.Error("CRD rendered with crds.install=false")
		}
	})
	t.Run("replicas and image", func(t *testing.T) {
		objs := renderChart(t, map[string]any{"replicaCount": 1, "image": map[string]any{"tag": "v1.2.3", "pullPolicy": "Always"}})
		d := into[appsv1.Deployment](t, find(t, objs, "Deployment", ""))
		if ptr.Deref(d.Spec.Replicas, 0) != 1 {
			t.Errorf("replicas %d, want 1", ptr.Deref(d.Spec.Replicas, 0))
		}
		if c := d.Spec.Template.Spec.Containers[0]; c.Image != "ghcr.io/silogen/kaiwo-webhook:v1.2.3" || c.ImagePullPolicy != corev1.PullAlways {
			t.Errorf("image %s (%s), want ghcr.io/silogen/kaiwo-webhook:v1.2.3 (Always)", c.Image, c.ImagePullPolicy)
		}
		if slices.Contains(kinds(objs), "PodDisruptionBudget") {
			t.Error("PodDisruptionBudget with one replica would block every drain")
		}
	})
	t.Run("policies", func(t *testing.T) {
		objs := renderChart(t, map[string]any{"policies": []any{samplePolicyValue(t)}})
		var docs bytes.Buffer
		for _, o := range objs {
			if o.GetKind() == "KaiwoPolicy" {
				b, err := yaml.Marshal(o.Object)
				if err != nil {
					t.Fatal(err)
				}
				docs.WriteString("---\n")
				docs.Write(b)
			}
		}
		policies, _, err := policy.Load(&docs)
		if err != nil {
			t.Fatalf("rendered KaiwoPolicy does not load: %v", err)
		}
		if len(policies) != 1 || policies[0].Name != "default" {
			t.Fatalf("want one KaiwoPolicy default, got %d", len(policies))
		}
		if errs := policy.Validate(&policies[0]); len(errs) > 0 {
			t.Errorf("rendered KaiwoPolicy is invalid: %v", errs.ToAggregate())
		}
		if _, err := tryRenderChart(t, map[string]any{"policies": []any{map[string]any{"spec": map[string]any{}}}}); err == nil ||
			!strings.Contains(err.Error(), "at '/policies/0': missing property 'name'") {
			t.Errorf("policy without name: want values.schema.json to name policies/0 name, got %v", err)
		}
	})
	t.Run("another release and namespace", func(t *testing.T) {
		objs, err := renderChartAs(t, "team", "gpu-system", nil)
		if err != nil {
			t.Fatal(err)
		}
		m := into[admissionregistrationv1.MutatingWebhookConfiguration](t, find(t, objs, "MutatingWebhookConfiguration", "team-kaiwo-webhook"))
		if got := m.Annotations[injectCAFrom]; got != "gpu-system/team-kaiwo-webhook" {
			t.Errorf("%s = %q", injectCAFrom, got)
		}
		v := into[admissionregistrationv1.ValidatingWebhookConfiguration](t, find(t, objs, "ValidatingWebhookConfiguration", "team-kaiwo-webhook"))
		for _, w := range append(mutatingAsValidating(m.Webhooks), v.Webhooks[1:]...) {
			if s := w.ClientConfig.Service; s == nil || s.Name != "team-kaiwo-webhook" || s.Namespace != "gpu-system" {
				t.Errorf("%s: clientConfig %+v", w.Name, w.ClientConfig)
			}
			if got := w.NamespaceSelector.MatchExpressions[0].Values; !slices.Equal(got, []string{"kube-system", "gpu-system"}) {
				t.Errorf("%s: namespaceSelector excludes %v, want kube-system and gpu-system", w.Name, got)
			}
		}
		dnsNames, _, _ := unstructured.NestedStringSlice(find(t, objs, "Certificate", "team-kaiwo-webhook").Object, "spec", "dnsNames")
		if !slices.Contains(dnsNames, "team-kaiwo-webhook.gpu-system.svc") {
			t.Errorf("Certificate dnsNames %v lack the Service's", dnsNames)
		}
		secret, _, _ := unstructured.NestedString(find(t, objs, "Certificate", "").Object, "spec", "secretName")
		d := into[appsv1.Deployment](t, find(t, objs, "Deployment", "team-kaiwo-webhook"))
		if v := d.Spec.Template.Spec.Volumes; len(v) != 1 || v[0].Secret == nil || v[0].Secret.SecretName != secret {
			t.Errorf("Deployment mounts %+v, want the Certificate's Secret %q", v, secret)
		}
	})
}

// TestChartCRDIsCurrent: the chart ships a copy of config/crd's CRD (Helm reads
// no file outside the chart). `go -C test test ./manifests -update` refreshes it.
func TestChartCRDIsCurrent(t *testing.T) {
	src := filepath.Join(root(t), "config", "crd", crdFile)
	dst := filepath.Join(chartDir(t), "files", crdFile)
	want, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(dst, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, got) {
		t.Fatalf("%s differs from %s: run `go -C test test ./manifests -update`", dst, src)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(want, &crd); err != nil {
		t.Fatal(err)
	}
	rendered := into[apiextensionsv1.CustomResourceDefinition](t, find(t, renderChart(t, nil), "CustomResourceDefinition", crd.Name))
	if diff := cmp.Diff(crd.Spec, rendered.Spec); diff != "" {
		t.Errorf("chart CRD spec (-config/crd,+chart):\n%s", diff)
	}
}
