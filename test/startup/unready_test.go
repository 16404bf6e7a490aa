package startup

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	authnv1 "k8s.io/api/authentication/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/internal/testenv"
	. "github.com/silogen/kaiwo-webhook/internal/testobj"
	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/server"
)

// A replica whose identity cannot list KaiwoPolicies and namespaces (RBAC not applied yet, or
// revoked) never builds its index: it stays unready, and its handler refuses with 503 instead of
// admitting workloads as if no policy applied. Once it may read them, it becomes ready by itself.
func TestUnreadyUntilPoliciesCanBeRead(t *testing.T) {
	envtestOnly(t)
	srv, err := testenv.StartServerWith("../..", testenv.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	restricted, err := srv.AddUser("kaiwo-webhook-without-rbac")
	if err != nil {
		t.Fatal(err)
	}

	certDir := t.TempDir()
	if _, err := testenv.WriteServingCert(certDir, "kaiwo-startup"); err != nil {
		t.Fatal(err)
	}
	ports := make([]int, 2)
	for i := range ports {
		if ports[i], err = testenv.FreePort(); err != nil {
			t.Fatal(err)
		}
	}
	probe := "127.0.0.1:" + strconv.Itoa(ports[1])
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mgr, err := server.NewManager(ctx, restricted, server.Options{
		Host: "127.0.0.1", Port: ports[0], CertDir: certDir, MetricsAddr: "0", ProbeAddr: probe,
		Metrics: server.NewMetrics(prometheus.NewRegistry()), KueueCheckInterval: time.Hour,
		SkipControllerNameValidation: true, // the in-process server of srv runs the same controllers
	})
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() { defer close(stopped); _ = mgr.Start(ctx) }()
	defer func() {
		cancel()
		// controller-runtime's manager does not return while its caches have never synced.
		select {
		case <-stopped:
		case <-time.After(30 * time.Second):
			t.Log("the manager did not stop within 30s")
		}
	}()
	if err := testenv.WaitTLS("127.0.0.1:"+strconv.Itoa(ports[0]), time.Minute); err != nil {
		t.Fatal(err)
	}

	// Serving, but not ready, and refusing.
	for range 3 {
		if err := testenv.WaitReady("http://"+probe+"/readyz", 2*time.Second); err == nil || !strings.Contains(err.Error(), "[-]policies failed") {
			t.Fatalf("ready without being able to read policies: %v", err)
		}
	}
	resp := admit(t, ports[0], MakeJob("j", "default").Annotate(annotations.GPUs, "1").Obj())
	if resp.Allowed || resp.Result == nil || resp.Result.Code != http.StatusServiceUnavailable || !strings.Contains(resp.Result.Message, "policy index not built yet") {
		t.Errorf("before the index was built: allowed=%v result=%+v, want a 503 refusal", resp.Allowed, resp.Result)
	}

	// Granted what config/webhook's ClusterRole grants, it recovers by itself.
	admin, err := client.New(srv.Config, client.Options{Scheme: server.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "startup-reader"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"kaiwo.silogen.ai"}, Resources: []string{"kaiwopolicies"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"kueue.x-k8s.io"}, Resources: []string{"resourceflavors"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"kueue.x-k8s.io"}, Resources: []string{"localqueues"}, Verbs: []string{"get", "list", "watch", "create"}},
		},
	}); err != nil {
		t.Fatal(err)
	}
	if err := admin.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "startup-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "startup-reader"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "kaiwo-webhook-without-rbac"}},
	}); err != nil {
		t.Fatal(err)
	}
	granted := time.Now()
	if err := testenv.WaitReady("http://"+probe+"/readyz", 2*time.Minute); err != nil {
		t.Fatalf("not ready after RBAC was granted: %v", err)
	}
	t.Logf("ready %v after RBAC was granted", time.Since(granted).Round(100*time.Millisecond))
	resp = admit(t, ports[0], MakeJob("j", "default").Annotate(annotations.GPUs, "1").Obj())
	if !resp.Allowed || len(resp.Patch) == 0 {
		t.Errorf("after the index was built: allowed=%v patch=%d bytes result=%+v, want a mutation", resp.Allowed, len(resp.Patch), resp.Result)
	}
}

// admit posts a CREATE AdmissionReview for obj to the server at port, as the API server would.
func admit(t *testing.T, port int, obj runtime.Object) *admissionv1.AdmissionResponse {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	gvk := obj.GetObjectKind().GroupVersionKind()
	m := obj.(metav1.Object)
	body, _ := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "startup", Kind: metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
			Namespace: m.GetNamespace(), Name: m.GetName(), Operation: admissionv1.Create,
			UserInfo: authnv1.UserInfo{Username: "alice"}, Object: runtime.RawExtension{Raw: raw},
		},
	})
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // loopback test server
	r, err := c.Post(fmt.Sprintf("https://127.0.0.1:%d%s", port, server.MutatePath), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(r.Body).Decode(&out); err != nil || out.Response == nil {
		t.Fatalf("decoding the AdmissionReview: %v", err)
	}
	return out.Response
}
