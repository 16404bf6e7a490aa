package integration

import (
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/silogen/kaiwo-webhook/internal/testenv"
	"github.com/silogen/kaiwo-webhook/pkg/server"
)

var (
	cfg     *rest.Config
	k8s     client.Client
	metrics *server.Metrics
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("integration: skipped under -short")
		os.Exit(0)
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "integration: KUBEBUILDER_ASSETS is not set; run `make test` (it builds kube-apiserver and etcd once) or use -short")
		os.Exit(1)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true), zap.Level(zapcore.Level(zapLevel()))))
	s, err := testenv.StartServer("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	defer s.Stop()
	cfg, k8s, metrics = s.Config, s.Client, s.Metrics
	return m.Run()
}

func zapLevel() int8 {
	if os.Getenv("VERBOSE") != "" {
		return -1
	}
	return 1 // warnings and errors only
}

// eventually polls f until it returns nil or the timeout passes; it returns the time it took.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := f()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not true after %v: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
