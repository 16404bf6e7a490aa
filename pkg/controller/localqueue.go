package controller

import (
	"context"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	kueue "sigs.k8s.io/kueue/apis/kueue/v1beta2"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
)

// LocalQueues keeps, in every namespace whose policy says localQueue.create, a LocalQueue of the
// policy's queue pointing at its ClusterQueue. It creates a missing one and never changes or deletes
// an existing one: a LocalQueue of that name that a user made is theirs.
type LocalQueues struct {
	Client client.Client
	Sync   *IndexSync
}

// Setup registers the controller; it runs only on the elected leader.
func (r *LocalQueues) Setup(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("localqueue").
		For(&corev1.Namespace{}, builder.WithPredicates(predicate.Funcs{
			CreateFunc:  func(event.CreateEvent) bool { return true },
			UpdateFunc:  func(e event.UpdateEvent) bool { return !maps.Equal(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels()) },
			DeleteFunc:  func(event.DeleteEvent) bool { return false },
			GenericFunc: func(event.GenericEvent) bool { return false },
		})).
		Watches(&kueue.LocalQueue{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: o.GetNamespace()}}}
		}), builder.WithPredicates(predicate.Funcs{
			CreateFunc:  func(event.CreateEvent) bool { return false },
			UpdateFunc:  func(event.UpdateEvent) bool { return false },
			DeleteFunc:  func(event.DeleteEvent) bool { return true },
			GenericFunc: func(event.GenericEvent) bool { return false },
		})).
		WatchesRawSource(r.Sync.Source()).
		Complete(r)
}

// Reconcile ensures the namespace's LocalQueue.
func (r *LocalQueues) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var ns corev1.Namespace
	if err := r.Client.Get(ctx, req.NamespacedName, &ns); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if ns.DeletionTimestamp != nil {
		return reconcile.Result{}, nil
	}
	pol, err := r.Sync.For(ctx, ns.Name)
	if err != nil {
		return reconcile.Result{}, err
	}
	if pol.LocalQueue == nil {
		return reconcile.Result{}, nil
	}
	var lq kueue.LocalQueue
	err = r.Client.Get(ctx, types.NamespacedName{Namespace: ns.Name, Name: pol.LocalQueue.Name}, &lq)
	if err == nil || !apierrors.IsNotFound(err) {
		return reconcile.Result{}, err
	}
	lq = kueue.LocalQueue{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: pol.LocalQueue.Name, Labels: map[string]string{
			annotations.Managed: "true", "app.kubernetes.io/managed-by": "kaiwo-webhook",
		}},
		Spec: kueue.LocalQueueSpec{ClusterQueue: kueue.ClusterQueueReference(pol.LocalQueue.ClusterQueue)},
	}
	if err := r.Client.Create(ctx, &lq); err != nil && !apierrors.IsAlreadyExists(err) {
		return reconcile.Result{}, err
	}
	log.FromContext(ctx).Info("created LocalQueue", "namespace", ns.Name, "name", lq.Name, "clusterQueue", lq.Spec.ClusterQueue, "policy", pol.Name)
	return reconcile.Result{}, nil
}
