// Command benchserver is the webhook server that bench's Layer C loads over loopback HTTPS and Layer E
// measures at rest. It serves the production handler at /mutate and a no-op controller-runtime handler
// at /noop, on controller-runtime's webhook server with the TLS options server.NewManager uses, plus
// /debug/stats (requests served, bytes allocated). It listens on 127.0.0.1 only, prints
// "listening <addr>" once ready, and exits on SIGTERM or SIGINT, or when stdin closes.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/silogen/kaiwo-webhook/bench"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
	"github.com/silogen/kaiwo-webhook/pkg/server"
)

// Stats is what /debug/stats reports.
type Stats struct {
	// Requests counts admission requests answered at /mutate and /noop.
	Requests   uint64 `json:"requests"`
	TotalAlloc uint64 `json:"totalAlloc"`
	Mallocs    uint64 `json:"mallocs"`
	HeapAlloc  uint64 `json:"heapAlloc"`
	NumGC      uint32 `json:"numGC"`
	GOMAXPROCS int    `json:"gomaxprocs"`
}

func main() {
	certDir := flag.String("cert-dir", "", "directory with tls.crt and tls.key")
	policies := flag.Int("policies", 0, "hold an index of this many policies (Layer E); 0 serves the bench policy")
	namespaces := flag.Int("namespaces", 0, "with -policies: this many namespaces in the index")
	flag.Parse()
	logf.SetLogger(logr.Discard())
	if err := run(*certDir, *policies, *namespaces); err != nil {
		fmt.Fprintln(os.Stderr, "benchserver:", err)
		os.Exit(1)
	}
}

func run(certDir string, nPolicies, nNamespaces int) error {
	var x *policy.Index
	if nPolicies > 0 || nNamespaces > 0 {
		x = bench.ScaleIndex(nPolicies, nNamespaces)
	} else {
		var err error
		if x, err = bench.TeamIndex(); err != nil {
			return err
		}
	}
	// Settle before reporting: what the index holds, not the garbage of building it.
	runtime.GC()
	debug.FreeOSMemory()

	port, err := freePort()
	if err != nil {
		return err
	}
	srv := server.NewWebhookServer("127.0.0.1", port, certDir) // as server.NewManager
	var served atomic.Uint64
	count := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r)
			served.Add(1)
		})
	}
	srv.Register("/mutate", count(bench.Mutator(bench.IndexPolicies{Index: x})))
	srv.Register("/noop", count(bench.Noop()))
	srv.Register("/debug/stats", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		_ = json.NewEncoder(w).Encode(Stats{
			Requests: served.Load(), TotalAlloc: m.TotalAlloc, Mallocs: m.Mallocs, HeapAlloc: m.HeapAlloc,
			NumGC: m.NumGC, GOMAXPROCS: runtime.GOMAXPROCS(0),
		})
	}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() { // the parent's end of stdin closes when it dies: do not outlive it
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop()
	}()
	errc := make(chan error, 1)
	go func() { errc <- srv.Start(ctx) }()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := waitTLS(addr, 30*time.Second, errc); err != nil {
		return err
	}
	runtime.KeepAlive(x)
	fmt.Printf("listening %s\n", addr)
	return <-errc
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitTLS(addr string, timeout time.Duration, errc <-chan error) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case err := <-errc:
			return fmt.Errorf("server stopped: %w", err)
		default:
		}
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // readiness probe of our own server
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not serving at %s after %v: %w", addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
