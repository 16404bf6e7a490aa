package server

import (
	"context"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/silogen/kaiwo-webhook/pkg/controller"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
)

// setupKinds logs and measures which kinds the API server serves, now and every interval until it serves
// them all.
func setupKinds(ctx context.Context, cfg *rest.Config, mgr manager.Manager, kinds *mutate.Registry, metrics *Metrics, interval time.Duration) error {
	d, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	if interval == 0 {
		interval = 15 * time.Second
	}
	w := &controller.KindsWatch{Kinds: kinds, Discovery: d, Interval: interval, Served: metrics.KindServed, Log: ctrl.Log.WithName("kinds")}
	if w.Check(ctx) {
		return nil
	}
	return mgr.Add(w)
}
