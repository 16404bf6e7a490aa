package controller

import (
	"context"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/log"
	kueue "sigs.k8s.io/kueue/apis/kueue/v1beta2"
)

// KueueWatch finds out whether Kueue's API is served and, the first time it is, runs Enable (which
// starts the ResourceFlavor informer, the LocalQueue controller and the policy status watches). Kueue installed after the
// webhook started is so picked up without a restart. It runs on every replica.
type KueueWatch struct {
	// Discovery asks the API server afresh on every check (no cached discovery).
	Discovery discovery.DiscoveryInterface
	// Interval between checks while Kueue's API is not served.
	Interval time.Duration
	// Enable runs once, when the API is first served; an error is retried at the next check.
	Enable func(ctx context.Context) error
	served atomic.Bool
}

// Served reports whether Enable ran: Kueue's API is served and what needs it runs.
func (k *KueueWatch) Served() bool { return k.served.Load() }

// Check runs one check, and Enable if Kueue's API is served. It reports whether it is enabled now.
func (k *KueueWatch) Check(ctx context.Context) bool {
	if k.served.Load() {
		return true
	}
	ok, err := KueueServed(k.Discovery)
	if err != nil {
		log.FromContext(ctx).Error(err, "checking whether Kueue's API is served")
		return false
	}
	if !ok {
		return false
	}
	if err := k.Enable(ctx); err != nil {
		log.FromContext(ctx).Error(err, "starting what needs Kueue (ResourceFlavor informer, LocalQueue controller, policy status watches)")
		return false
	}
	k.served.Store(true)
	log.FromContext(ctx).Info("Kueue's API is served: ResourceFlavor informer, LocalQueue controller and policy status watches started")
	return true
}

// Start checks every Interval until Kueue's API is served.
func (k *KueueWatch) Start(ctx context.Context) error {
	pollUntil(log.IntoContext(ctx, log.Log.WithName("kueue-watch")), k.Interval, k.Check)
	return nil
}

// pollUntil calls check now and then every interval until it reports true or ctx ends.
func pollUntil(ctx context.Context, interval time.Duration, check func(context.Context) bool) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for !check(ctx) {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// NeedLeaderElection is false: every replica needs the flavors; Enable adds the elected controller.
func (k *KueueWatch) NeedLeaderElection() bool { return false }

// KueueServed reports whether the API server serves Kueue's LocalQueue and ResourceFlavor.
func KueueServed(d discovery.DiscoveryInterface) (bool, error) {
	list, err := d.ServerResourcesForGroupVersion(kueue.GroupVersion.String())
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	want := map[string]bool{"localqueues": false, "resourceflavors": false}
	for _, r := range list.APIResources {
		if _, ok := want[r.Name]; ok {
			want[r.Name] = true
		}
	}
	return want["localqueues"] && want["resourceflavors"], nil
}
