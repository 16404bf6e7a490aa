package controller

import (
	"context"
	"maps"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"

	"github.com/silogen/kaiwo-webhook/pkg/mutate"
)

// KindsWatch reports which of the registry's kinds the API server serves: a kind whose CRD is not
// installed (KubeRay's, say) is handled by the webhook but not served, and nothing of it ever arrives. It
// logs the kinds at start and whenever that changes, and sets the kaiwo_webhook_kind_served gauge. It
// checks at start and then every Interval until every kind is served (a CRD installed later is picked up);
// the webhook serves either way. It runs on every replica.
type KindsWatch struct {
	Kinds *mutate.Registry
	// Discovery asks the API server afresh on every check (no cached discovery).
	Discovery discovery.DiscoveryInterface
	Interval  time.Duration
	// Served is the gauge: 1 for a served kind, 0 for one not served.
	Served *prometheus.GaugeVec
	Log    logr.Logger

	mu   sync.Mutex
	last map[schema.GroupVersionKind]bool
}

// kindRef is one kind the watch reports: handled, or a GPU-capable kind the validator checks.
type kindRef struct {
	gvk      schema.GroupVersionKind
	resource string
	handled  bool
}

func (k *KindsWatch) refs() []kindRef {
	var out []kindRef
	for _, h := range k.Kinds.Kinds() {
		out = append(out, kindRef{h.GVK, h.Resource, true})
	}
	for _, u := range k.Kinds.Unhandled() {
		out = append(out, kindRef{u.GVK, u.Resource, false})
	}
	return out
}

// Check asks the API server once which kinds it serves, updates the gauge and logs a change. It reports
// whether every kind is served; a kind whose group the discovery could not answer for counts as not
// served until a later check.
func (k *KindsWatch) Check(ctx context.Context) bool {
	resources := map[string]map[string]bool{} // group version -> served resources
	var handled, notServed []string
	all := true
	served := map[schema.GroupVersionKind]bool{}
	for _, r := range k.refs() {
		gv := r.gvk.GroupVersion().String()
		names, ok := resources[gv]
		if !ok {
			names = map[string]bool{}
			list, err := k.Discovery.ServerResourcesForGroupVersion(gv)
			switch {
			case apierrors.IsNotFound(err):
			case err != nil:
				k.Log.Error(err, "discovering the served kinds", "groupVersion", gv)
			default:
				for _, res := range list.APIResources {
					names[res.Name] = true
				}
			}
			resources[gv] = names
		}
		ok = names[r.resource]
		served[r.gvk] = ok
		all = all && ok
		name := gv + " " + r.gvk.Kind
		if r.handled {
			handled = append(handled, name)
		}
		if !ok {
			notServed = append(notServed, name)
		}
		v := 0.0
		if ok {
			v = 1
		}
		k.Served.WithLabelValues(r.gvk.Group, r.gvk.Version, r.gvk.Kind, boolLabel(r.handled)).Set(v)
	}
	k.mu.Lock()
	changed := k.last == nil || !maps.Equal(k.last, served)
	k.last = served
	k.mu.Unlock()
	if changed {
		k.Log.Info("kinds handled; those not served have no CRD installed", "handled", handled, "notServed", notServed)
	}
	return all
}

func boolLabel(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// Start checks every Interval until every kind is served.
func (k *KindsWatch) Start(ctx context.Context) error {
	pollUntil(ctx, k.Interval, k.Check)
	return nil
}

// NeedLeaderElection is false: every replica reports what it serves.
func (k *KindsWatch) NeedLeaderElection() bool { return false }
