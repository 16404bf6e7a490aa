package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
	kueue "sigs.k8s.io/kueue/apis/kueue/v1beta2"

	"github.com/silogen/kaiwo-webhook/api/v1alpha1"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// IndexSync feeds the policy index from the manager's informers: policies, namespaces and
// ResourceFlavors are compiled when they change, never per request.
type IndexSync struct {
	Index *policy.Index
	// Reader is an uncached client, used only for a namespace the informer has not seen yet.
	Reader client.Reader
	cache  manager.Manager
	seen   sync.Map
	synced atomic.Bool
	// flavorsOn: the ResourceFlavor informer was added (Kueue's API is served).
	flavorsOn atomic.Bool

	// pending holds namespaces whose effective policy may have changed, until the LocalQueue
	// controller (leader only) takes them; deduplicated, so it is bounded by the namespace count.
	mu      sync.Mutex
	pending map[string]struct{}
	signal  chan struct{}
}

// ErrNotBuilt is what For answers before the index was first built from the informers.
var ErrNotBuilt = errors.New("policy index not built yet")

// Setup registers the informer handlers and the runnable that builds the index. That runnable runs on
// every replica (not only the elected leader): each replica serves the webhook from its own index.
// The Kueue ResourceFlavor informer is added by SetupFlavors, once Kueue's API is served.
func (s *IndexSync) Setup(ctx context.Context, mgr manager.Manager) error {
	s.cache = mgr
	s.signal = make(chan struct{}, 1)
	c := mgr.GetCache()
	nsInf, err := c.GetInformer(ctx, &corev1.Namespace{})
	if err != nil {
		return err
	}
	if _, err := nsInf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { s.namespace(o, false) },
		UpdateFunc: func(_, o any) { s.namespace(o, false) },
		DeleteFunc: func(o any) { s.namespace(o, true) },
	}); err != nil {
		return err
	}
	polInf, err := c.GetInformer(ctx, &v1alpha1.KaiwoPolicy{})
	if err != nil {
		return err
	}
	if _, err := polInf.AddEventHandler(all(func() { s.logged(s.policies(ctx)) })); err != nil {
		return err
	}
	return mgr.Add(everyReplica(s.build))
}

// SetupFlavors adds the Kueue ResourceFlavor informer (gpusPerNodeFrom reads flavors' node labels). It
// may be called before or after the manager started; after, it returns once the informer synced.
func (s *IndexSync) SetupFlavors(ctx context.Context) error {
	inf, err := s.cache.GetCache().GetInformer(ctx, &kueue.ResourceFlavor{})
	if err != nil {
		return err
	}
	s.flavorsOn.Store(true)
	_, err = inf.AddEventHandler(all(func() { s.logged(s.flavors(ctx)) }))
	return err
}

// build waits for the caches, then builds the index from them. A List that fails (it reads the cache,
// so it should not) is retried and the replica stays unready meanwhile.
func (s *IndexSync) build(ctx context.Context) error {
	if !s.cache.GetCache().WaitForCacheSync(ctx) {
		if ctx.Err() != nil {
			return nil // stopped before the caches synced
		}
		return fmt.Errorf("policy caches did not sync")
	}
	for {
		err := s.policies(ctx)
		if err == nil {
			err = s.flavors(ctx)
		}
		if err == nil {
			break
		}
		s.logged(err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	s.synced.Store(true)
	<-ctx.Done()
	return nil
}

func (s *IndexSync) logged(err error) {
	if err != nil {
		log.Log.WithName("policy-index").Error(err, "updating the policy index")
	}
}

// Synced is a readiness check: ready once the caches synced and the index was built from them.
func (s *IndexSync) Synced(*http.Request) error {
	if !s.synced.Load() {
		return ErrNotBuilt
	}
	return nil
}

// For is the effective policy of namespace: a map lookup, with one uncached read for a namespace the
// informer has not delivered yet (created a moment ago).
// Before the index was built it answers ErrNotBuilt: every namespace would resolve to no policy.
func (s *IndexSync) For(ctx context.Context, namespace string) (*policy.Policy, error) {
	if !s.synced.Load() {
		return nil, ErrNotBuilt
	}
	if _, ok := s.seen.Load(namespace); ok || namespace == "" {
		return s.Index.For(namespace), nil
	}
	var ns corev1.Namespace
	if err := s.Reader.Get(ctx, client.ObjectKey{Name: namespace}, &ns); err != nil {
		return nil, err
	}
	s.namespace(&ns, false)
	return s.Index.For(namespace), nil
}

func (s *IndexSync) namespace(o any, deleted bool) {
	if d, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	ns, ok := o.(*corev1.Namespace)
	if !ok {
		return
	}
	if deleted {
		s.Index.DeleteNamespace(ns.Name)
		s.seen.Delete(ns.Name)
		return
	}
	s.Index.SetNamespace(ns.Name, ns.Labels)
	s.seen.Store(ns.Name, true)
	s.notify(ns.Name)
}

func (s *IndexSync) policies(ctx context.Context) error {
	var list v1alpha1.KaiwoPolicyList
	if err := s.cache.GetCache().List(ctx, &list); err != nil {
		return fmt.Errorf("listing KaiwoPolicies: %w", err)
	}
	s.Index.SetPolicies(list.Items)
	s.notifyAll()
	return nil
}

func (s *IndexSync) flavors(ctx context.Context) error {
	if !s.flavorsOn.Load() {
		return nil
	}
	var list kueue.ResourceFlavorList
	if err := s.cache.GetCache().List(ctx, &list); err != nil {
		return fmt.Errorf("listing ResourceFlavors: %w", err)
	}
	fl := policy.Flavors{}
	for _, f := range list.Items {
		fl[f.Name] = f.Spec.NodeLabels
	}
	s.Index.SetFlavors(fl)
	s.notifyAll()
	return nil
}

// notify marks namespaces for the LocalQueue controller, after the index has the change; it never blocks.
func (s *IndexSync) notify(names ...string) {
	s.mu.Lock()
	if s.pending == nil {
		s.pending = map[string]struct{}{}
	}
	for _, n := range names {
		s.pending[n] = struct{}{}
	}
	s.mu.Unlock()
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

func (s *IndexSync) notifyAll() {
	var names []string
	s.seen.Range(func(k, _ any) bool {
		names = append(names, k.(string))
		return true
	})
	s.notify(names...)
}

// Source feeds the namespaces whose policy changed to a controller's queue.
func (s *IndexSync) Source() source.Source {
	return source.TypedFunc[reconcile.Request](func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-s.signal:
				}
				s.mu.Lock()
				names := s.pending
				s.pending = nil
				s.mu.Unlock()
				for n := range names {
					q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Name: n}})
				}
			}
		}()
		return nil
	})
}

func all(f func()) toolscache.ResourceEventHandlerFuncs {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { f() },
		UpdateFunc: func(_, _ any) { f() },
		DeleteFunc: func(any) { f() },
	}
}

// everyReplica is a runnable that runs on every replica, leader election or not.
type everyReplica func(ctx context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (everyReplica) NeedLeaderElection() bool          { return false }
