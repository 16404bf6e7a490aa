package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/silogen/kaiwo-webhook/internal/testenv"
	"github.com/silogen/kaiwo-webhook/pkg/server"
)

func writeCert(t *testing.T, dir, cn string) {
	t.Helper()
	if _, err := testenv.WriteServingCert(dir, cn); err != nil {
		t.Fatal(err)
	}
}

// servedCN handshakes and returns the served certificate's common name and the negotiated protocol.
func servedCN(addr string) (string, string, uint16, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr,
		&tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}}) //nolint:gosec // the test reads the served cert
	if err != nil {
		return "", "", 0, err
	}
	defer conn.Close()
	st := conn.ConnectionState()
	return st.PeerCertificates[0].Subject.CommonName, st.NegotiatedProtocol, st.Version, nil
}

// admit sends one AdmissionReview over a new TLS connection and returns the served certificate's name.
func admit(addr string) (string, error) {
	body, _ := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "u", Operation: admissionv1.Create,
			Kind:   metav1.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"},
			Object: runtime.RawExtension{Raw: []byte(`{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j","annotations":{"kaiwo.silogen.ai/gpus":"1"}},"spec":{"template":{"spec":{"containers":[{"name":"m","image":"x"}]}}}}`)}},
	})
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // the test reads the served cert
	resp, err := c.Post("https://"+addr+"/mutate", "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || out.Response == nil || !out.Response.Allowed || len(out.Response.Patch) == 0 {
		return "", fmt.Errorf("HTTP %d, response %+v, %v", resp.StatusCode, out.Response, err)
	}
	return resp.TLS.PeerCertificates[0].Subject.CommonName, nil
}

// TestTLSReload: replacing the certificate files makes the next connections serve the new certificate,
// with no restart and no failed admission request in between; HTTP/2 is off and TLS 1.2 is the minimum.
func TestTLSReload(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir, "first")
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	srv := server.NewWebhookServer("127.0.0.1", port, dir) // the server NewManager serves the webhooks on
	h, _ := newHandler(t)
	srv.Register("/mutate", h)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = srv.Start(ctx) }()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))

	// Wait for the server to listen; a refused connect is retried, anything else fails.
	deadline := time.Now().Add(30 * time.Second)
	for {
		cn, proto, version, err := servedCN(addr)
		if err == nil {
			if cn != "first" || proto == "h2" || version < tls.VersionTLS12 {
				t.Fatalf("served %q over %q (TLS %x)", cn, proto, version)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server never listened: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil { //nolint:gosec
		t.Error("TLS 1.1 was accepted")
	}

	writeCert(t, dir, "second")
	start, handshakes := time.Now(), 0
	for {
		cn, err := admit(addr)
		handshakes++
		var opErr *net.OpError
		switch {
		case errors.As(err, &opErr) && opErr.Op == "dial":
			// the loopback network refused a connect for a moment; not the server's doing
		case err != nil:
			t.Fatalf("request %d failed during the reload: %v", handshakes, err)
		case cn == "second":
			t.Logf("new certificate served after %v and %d requests", time.Since(start).Round(time.Millisecond), handshakes)
			return
		case cn != "first":
			t.Fatalf("served %q", cn)
		}
		if time.Since(start) > 60*time.Second {
			t.Fatalf("still serving the old certificate after %v", time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
