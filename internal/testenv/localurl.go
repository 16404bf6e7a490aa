package testenv

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// LocalWebhookURLs points every webhook of the Mutating- and ValidatingWebhookConfiguration named
// name among objs at a server on 127.0.0.1:port: each clientConfig's reference to the Service name
// becomes the URL https://127.0.0.1:port<path>, on the path the reference names ("/" when it names
// none), and keeps its caBundle. It works on every webhook whatever their number and order, so a
// webhook added to config/webhook needs no change here. It fails when no such configuration is
// found, when one has no webhooks, or when a webhook calls anything but the Service name.
func LocalWebhookURLs(objs []*unstructured.Unstructured, name string, port int) error {
	found := 0
	for _, o := range objs {
		if o.GetName() != name || (o.GetKind() != "MutatingWebhookConfiguration" && o.GetKind() != "ValidatingWebhookConfiguration") {
			continue
		}
		found++
		hooks, _, err := unstructured.NestedSlice(o.Object, "webhooks")
		if err != nil {
			return fmt.Errorf("%s %s: %w", o.GetKind(), name, err)
		}
		if len(hooks) == 0 {
			return fmt.Errorf("%s %s has no webhooks", o.GetKind(), name)
		}
		for i, h := range hooks {
			w, ok := h.(map[string]any)
			if !ok {
				return fmt.Errorf("%s %s: webhooks[%d] is not an object", o.GetKind(), name, i)
			}
			svc, ok, _ := unstructured.NestedMap(w, "clientConfig", "service")
			if !ok || svc["name"] != name {
				return fmt.Errorf("%s %s: webhook %v does not call Service %s (clientConfig %v)", o.GetKind(), name, w["name"], name, w["clientConfig"])
			}
			path, _ := svc["path"].(string)
			if path == "" {
				path = "/"
			}
			cc := map[string]any{"url": fmt.Sprintf("https://127.0.0.1:%d%s", port, path)}
			if ca, ok, _ := unstructured.NestedString(w, "clientConfig", "caBundle"); ok {
				cc["caBundle"] = ca
			}
			w["clientConfig"] = cc
		}
		if err := unstructured.SetNestedSlice(o.Object, hooks, "webhooks"); err != nil {
			return err
		}
	}
	if found == 0 {
		return fmt.Errorf("no Mutating- or ValidatingWebhookConfiguration %s", name)
	}
	return nil
}
