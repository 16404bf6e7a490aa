package testenv

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func webhookConfigs(t *testing.T, docs ...string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, d := range docs {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(d), &u.Object); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, u)
	}
	return objs
}

const mutating = `apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: kaiwo-webhook}
webhooks:
- name: a
  clientConfig: {service: {name: kaiwo-webhook, namespace: kaiwo-system, path: /mutate}, caBundle: Q0E=}
- name: b
  clientConfig: {service: {name: kaiwo-webhook, namespace: kaiwo-system}}
`

func TestLocalWebhookURLsEveryWebhook(t *testing.T) {
	other := strings.ReplaceAll(mutating, "kaiwo-webhook", "other")
	objs := webhookConfigs(t, mutating, other)
	if err := LocalWebhookURLs(objs, "kaiwo-webhook", 8443); err != nil {
		t.Fatal(err)
	}
	hooks, _, _ := unstructured.NestedSlice(objs[0].Object, "webhooks")
	want := []map[string]any{
		{"url": "https://127.0.0.1:8443/mutate", "caBundle": "Q0E="},
		{"url": "https://127.0.0.1:8443/"},
	}
	for i, h := range hooks {
		cc := h.(map[string]any)["clientConfig"].(map[string]any)
		if len(cc) != len(want[i]) || cc["url"] != want[i]["url"] || cc["caBundle"] != want[i]["caBundle"] {
			t.Errorf("webhook %d clientConfig = %v, want %v", i, cc, want[i])
		}
	}
	// Another configuration is left alone.
	if svc, ok, _ := unstructured.NestedSlice(objs[1].Object, "webhooks"); !ok || !strings.Contains(toYAML(t, svc), "service") {
		t.Errorf("configuration other changed: %v", svc)
	}
}

func TestLocalWebhookURLsRefuses(t *testing.T) {
	for name, docs := range map[string][]string{
		"no configuration":      {strings.ReplaceAll(mutating, "name: kaiwo-webhook}", "name: other}")},
		"webhook calls another": {strings.Replace(mutating, "{service: {name: kaiwo-webhook", "{service: {name: elsewhere", 1)},
		"webhook with a URL":    {strings.Replace(mutating, "{service: {name: kaiwo-webhook, namespace: kaiwo-system}}", "{url: https://example.com/}", 1)},
		"no webhooks":           {"apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {name: kaiwo-webhook}\n"},
	} {
		if err := LocalWebhookURLs(webhookConfigs(t, docs...), "kaiwo-webhook", 8443); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func toYAML(t *testing.T, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
