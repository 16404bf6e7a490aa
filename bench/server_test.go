package bench

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/silogen/kaiwo-webhook/internal/testenv"
)

// serverStats mirrors benchserver's /debug/stats.
type serverStats struct {
	Requests   uint64 `json:"requests"`
	TotalAlloc uint64 `json:"totalAlloc"`
	Mallocs    uint64 `json:"mallocs"`
	HeapAlloc  uint64 `json:"heapAlloc"`
	NumGC      uint32 `json:"numGC"`
	GOMAXPROCS int    `json:"gomaxprocs"`
}

// benchServer is one benchserver process.
type benchServer struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	addr   string
	client *http.Client
}

// serverBin is bench/cmd/benchserver, built once per suite run into binDir.
var serverBin struct {
	sync.Mutex
	dir, path string
}

func buildServer(t *testing.T) string {
	t.Helper()
	serverBin.Lock()
	defer serverBin.Unlock()
	if serverBin.path != "" {
		return serverBin.path
	}
	dir := serverBin.dir
	if dir == "" {
		dir = t.TempDir()
	}
	bin := filepath.Join(dir, "benchserver")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/benchserver")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("building benchserver: %v", err)
	}
	serverBin.path = bin
	return bin
}

// selfSigned writes a serving certificate for 127.0.0.1 into a new directory and returns the
// directory and a TLS client configuration that trusts it.
func selfSigned(t *testing.T) (string, *tls.Config) {
	t.Helper()
	dir := t.TempDir()
	crt, err := testenv.WriteServingCert(dir, "kaiwo-bench")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(crt)
	return dir, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// startServer starts benchserver on one core (GOMAXPROCS=1) and waits until it serves. It is
// stopped at the end of the test, and stops by itself if this process dies (its stdin closes).
func startServer(t *testing.T, bin, certDir string, clientTLS *tls.Config, args ...string) *benchServer {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"-cert-dir", certDir}, args...)...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	// The server's own log (TLS handshake errors of cancelled requests and the like) goes to a file,
	// shown only if it fails to start.
	logf, err := os.CreateTemp(t.TempDir(), "benchserver-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &benchServer{cmd: cmd, stdin: stdin}
	t.Cleanup(s.stop)
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				line <- addr
			}
		}
	}()
	select {
	case s.addr = <-line:
	case <-time.After(2 * time.Minute):
		out, _ := os.ReadFile(logf.Name())
		t.Fatalf("benchserver %v did not start:\n%s", args, out)
	}
	s.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: clientTLS}}
	return s
}

func (s *benchServer) url(path string) string { return "https://" + s.addr + path }

func (s *benchServer) stats(t *testing.T) serverStats {
	t.Helper()
	resp, err := s.client.Get(s.url("/debug/stats"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st serverStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// memory reads VmHWM (peak) and VmRSS of the server, in KiB.
func (s *benchServer) memory(t *testing.T) (hwm, rss int64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmHWM:":
			hwm = v
		case "VmRSS:":
			rss = v
		}
	}
	return hwm, rss
}

func (s *benchServer) stop() {
	if s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	_ = s.stdin.Close()
}
