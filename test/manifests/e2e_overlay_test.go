package manifests_test

import (
	"path/filepath"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/silogen/kaiwo-webhook/internal/testenv"
)

// TestE2EOverlayReachesEveryWebhook: test/e2e/config, with the URLs test/e2e sets
// (testenv.LocalWebhookURLs), points every webhook of config/webhook at the local server by URL, in
// config/webhook's order, on the path its Service reference names.
func TestE2EOverlayReachesEveryWebhook(t *testing.T) {
	base := renderKustomize(t, "webhook")
	overlay := kustomize(t, filesys.MakeFsOnDisk(), filepath.Join(root(t), "test", "e2e", "config"))
	if err := testenv.LocalWebhookURLs(overlay, serviceName, 19443); err != nil {
		t.Fatal(err)
	}
	type hook struct {
		name string
		cc   admissionregistrationv1.WebhookClientConfig
	}
	hooks := func(objs []*unstructured.Unstructured) map[string][]hook {
		out := map[string][]hook{}
		for _, kind := range []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
			u := find(t, objs, kind, serviceName)
			if kind == "MutatingWebhookConfiguration" {
				for _, w := range into[admissionregistrationv1.MutatingWebhookConfiguration](t, u).Webhooks {
					out[kind] = append(out[kind], hook{w.Name, w.ClientConfig})
				}
				continue
			}
			for _, w := range into[admissionregistrationv1.ValidatingWebhookConfiguration](t, u).Webhooks {
				out[kind] = append(out[kind], hook{w.Name, w.ClientConfig})
			}
		}
		return out
	}
	want, got := hooks(base), hooks(overlay)
	for kind, ws := range want {
		if len(got[kind]) != len(ws) {
			t.Fatalf("%s: %d webhooks in the overlay, %d in config/webhook", kind, len(got[kind]), len(ws))
		}
		for i, w := range ws {
			g := got[kind][i]
			if g.cc.Service != nil || g.cc.URL == nil {
				t.Errorf("%s %s: the overlay leaves clientConfig %+v, want a URL", kind, w.name, g.cc)
				continue
			}
			if path := ptr.Deref(w.cc.Service.Path, ""); !strings.HasSuffix(*g.cc.URL, ":19443"+path) {
				t.Errorf("%s %s: URL %s, want the local server's %s", kind, w.name, *g.cc.URL, path)
			}
		}
	}
}
