package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/silogen/kaiwo-webhook/pkg/controller"
)

// featureQueue is the feature the core records for a queued workload (the applied annotation's features).
const featureQueue = "queue"

// KueueNotInstalled is the warning on a queued workload while Kueue's API is not served.
const KueueNotInstalled = "Kueue is not installed in this cluster (the kueue.x-k8s.io API is not served): " +
	"this queued workload stays suspended until Kueue is installed and admits it; annotate kaiwo.silogen.ai/queueing: none to run it unqueued"

// setupKueue starts what needs Kueue's API (the ResourceFlavor informer on every replica, the elected
// LocalQueue controller) now if it is served, else later, when a periodic discovery check finds it.
func setupKueue(ctx context.Context, cfg *rest.Config, mgr manager.Manager, sync *controller.IndexSync, status *controller.PolicyStatus, interval time.Duration) (*controller.KueueWatch, error) {
	d, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	if interval == 0 {
		interval = 15 * time.Second
	}
	var once onceErr
	w := &controller.KueueWatch{Discovery: d, Interval: interval, Enable: func(ctx context.Context) error {
		return once.Do(func() error {
			if err := sync.SetupFlavors(ctx); err != nil {
				return fmt.Errorf("ResourceFlavor informer: %w", err)
			}
			if err := status.SetupKueue(mgr); err != nil {
				return fmt.Errorf("policy status: %w", err)
			}
			return (&controller.LocalQueues{Client: mgr.GetClient(), Sync: sync}).Setup(mgr)
		})
	}}
	// Served at start-up: the informer joins the caches the index waits for, before the first build.
	if !w.Check(ctx) {
		if err := mgr.Add(w); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// onceErr runs f until it first succeeds.
type onceErr struct {
	mu   sync.Mutex
	done bool
}

func (o *onceErr) Do(f func() error) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.done {
		return nil
	}
	if err := f(); err != nil {
		return err
	}
	o.done = true
	return nil
}
