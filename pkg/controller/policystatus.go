package controller

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	kueue "sigs.k8s.io/kueue/apis/kueue/v1beta2"

	"github.com/silogen/kaiwo-webhook/api/v1alpha1"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// Bounds of what the status holds, so that a policy over many namespaces writes a small status.
const (
	maxWarnings     = 16
	maxWarningBytes = 1024
	maxMessageBytes = 4096
)

// PolicyStatus writes each KaiwoPolicy's status: observedGeneration, the Valid and Degraded
// conditions, the number of namespaces it selects and its warnings; and an Event when a condition
// changes. It reads everything from the informer cache and writes only when the status changed.
type PolicyStatus struct {
	Client   client.Client
	Recorder recorder.EventRecorder
	// kueue is set once the ResourceFlavor and LocalQueue APIs are served (SetupKueue).
	kueue atomic.Bool
}

// Setup registers the controller; like every controller of the manager it runs only on the leader.
func (r *PolicyStatus) Setup(mgr ctrl.Manager) error {
	toAll := handler.EnqueueRequestsFromMapFunc(r.allPolicies)
	return ctrl.NewControllerManagedBy(mgr).
		Named("kaiwopolicy-status").
		// Any policy's spec decides ties and which namespaces each policy decides. The status writes
		// change no generation: they do not come back as work.
		Watches(&v1alpha1.KaiwoPolicy{}, toAll, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Namespace{}, toAll, builder.WithPredicates(predicate.Funcs{
			UpdateFunc: func(e event.UpdateEvent) bool { return !maps.Equal(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels()) },
		})).
		Complete(r)
}

// SetupKueue adds, once Kueue's API is served (at start-up or later), the watches of ResourceFlavors
// and LocalQueues; their first events bring every policy's status up to date with them.
func (r *PolicyStatus) SetupKueue(mgr ctrl.Manager) error {
	r.kueue.Store(true)
	toAll := handler.EnqueueRequestsFromMapFunc(r.allPolicies)
	return ctrl.NewControllerManagedBy(mgr).
		Named("kaiwopolicy-status-kueue").
		Watches(&kueue.ResourceFlavor{}, toAll).
		Watches(&kueue.LocalQueue{}, toAll, builder.WithPredicates(predicate.Funcs{
			UpdateFunc: func(event.UpdateEvent) bool { return false },
		})).
		Complete(r)
}

func (r *PolicyStatus) allPolicies(ctx context.Context, _ client.Object) []reconcile.Request {
	var list v1alpha1.KaiwoPolicyList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, p := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: p.Name}})
	}
	return out
}

// Reconcile computes one policy's status and writes it when it differs from the stored one.
func (r *PolicyStatus) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var p v1alpha1.KaiwoPolicy
	if err := r.Client.Get(ctx, req.NamespacedName, &p); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	var policies v1alpha1.KaiwoPolicyList
	if err := r.Client.List(ctx, &policies); err != nil {
		return reconcile.Result{}, err
	}
	var nsList corev1.NamespaceList
	if err := r.Client.List(ctx, &nsList); err != nil {
		return reconcile.Result{}, err
	}
	namespaces := make(map[string]map[string]string, len(nsList.Items))
	for _, ns := range nsList.Items {
		if ns.DeletionTimestamp == nil {
			namespaces[ns.Name] = ns.Labels
		}
	}
	flavors := policy.Flavors{}
	queues := map[types.NamespacedName]bool{}
	if r.kueue.Load() {
		var fl kueue.ResourceFlavorList
		if err := r.Client.List(ctx, &fl); err != nil {
			return reconcile.Result{}, err
		}
		for _, f := range fl.Items {
			flavors[f.Name] = f.Spec.NodeLabels
		}
		var lqs kueue.LocalQueueList
		if err := r.Client.List(ctx, &lqs); err != nil {
			return reconcile.Result{}, err
		}
		for _, q := range lqs.Items {
			queues[types.NamespacedName{Namespace: q.Namespace, Name: q.Name}] = true
		}
	}
	rep := policy.MakeReport(p.Name, policies.Items, namespaces, flavors)
	var missing func(ns, queue string) bool
	if r.kueue.Load() {
		missing = func(ns, queue string) bool { return !queues[types.NamespacedName{Namespace: ns, Name: queue}] }
	}
	want := DesiredStatus(&p, rep, missing)
	if apiequality.Semantic.DeepEqual(want, p.Status) {
		return reconcile.Result{}, nil
	}
	updated := p.DeepCopy()
	updated.Status = want
	if err := r.Client.Status().Update(ctx, updated); err != nil {
		return reconcile.Result{}, err // a conflict is retried with the newer object
	}
	r.events(&p, want)
	return reconcile.Result{}, nil
}

// DesiredStatus is the status of p given its report; missing tells whether namespace ns has no
// LocalQueue queue (nil when that cannot be told, e.g. Kueue is not installed). Conditions keep
// their lastTransitionTime while their status stays the same.
func DesiredStatus(p *v1alpha1.KaiwoPolicy, rep policy.Report, missing func(ns, queue string) bool) v1alpha1.KaiwoPolicyStatus {
	st := v1alpha1.KaiwoPolicyStatus{
		ObservedGeneration: p.Generation,
		Conditions:         slices.Clone(p.Status.Conditions),
		Namespaces:         int32(min(len(rep.Namespaces), 1<<31-1)),
	}
	valid := metav1.Condition{Type: v1alpha1.ConditionValid, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonValid,
		Message: "the policy passed validation", ObservedGeneration: p.Generation}
	if len(rep.Errors) > 0 {
		valid.Status, valid.Reason = metav1.ConditionFalse, v1alpha1.ReasonInvalid
		valid.Message = cut("Kaiwo-managed workloads in the namespaces it selects are denied until it is fixed: "+rep.Errors.ToAggregate().Error(), maxMessageBytes)
	}
	meta.SetStatusCondition(&st.Conditions, valid)

	degraded := metav1.Condition{Type: v1alpha1.ConditionDegraded, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonResolved,
		Message: "every part of the policy applies as written", ObservedGeneration: p.Generation}
	switch {
	case len(rep.FailOpen) > 0:
		degraded.Status, degraded.Reason = metav1.ConditionTrue, v1alpha1.ReasonFailOpen
		degraded.Message = cut(strings.Join(rep.FailOpen, "; "), maxMessageBytes)
	case len(rep.Ties) > 0:
		degraded.Status, degraded.Reason = metav1.ConditionTrue, v1alpha1.ReasonPriorityTie
		degraded.Message = cut(strings.Join(rep.Ties, "; "), maxMessageBytes)
	}
	meta.SetStatusCondition(&st.Conditions, degraded)

	warnings := slices.Concat(rep.FailOpen, rep.Ties)
	if missing != nil {
		warnings = append(warnings, missingQueues(p.Name, rep, missing)...)
	}
	for i, w := range warnings {
		if i == maxWarnings-1 && len(warnings) > maxWarnings {
			st.Warnings = append(st.Warnings, fmt.Sprintf("and %d more warnings", len(warnings)-i))
			break
		}
		st.Warnings = append(st.Warnings, cut(w, maxWarningBytes))
	}
	return st
}

// missingQueues warns of the namespaces where this policy decides the default queue, Kaiwo does not
// create its LocalQueue, and there is none: queued workloads there wait until an admin makes one.
func missingQueues(name string, rep policy.Report, missing func(ns, queue string) bool) []string {
	byQueue := map[string][]string{}
	for _, ns := range rep.Namespaces {
		eff := rep.Effective[ns]
		if eff == nil || eff.Name != name || eff.Err != nil || eff.LocalQueue != nil {
			continue
		}
		if q := eff.Defaults.Queue; q != "" && missing(ns, q) {
			byQueue[q] = append(byQueue[q], ns)
		}
	}
	var out []string
	for _, q := range sortedKeys(byQueue) {
		out = append(out, fmt.Sprintf("the default queue %q has no LocalQueue in %s: queued workloads there wait until one exists (or set localQueue.create)",
			q, policy.FewNames("namespace", byQueue[q])))
	}
	return out
}

// events records a change of a condition's status on the policy.
func (r *PolicyStatus) events(old *v1alpha1.KaiwoPolicy, now v1alpha1.KaiwoPolicyStatus) {
	if r.Recorder == nil {
		return
	}
	for _, c := range now.Conditions {
		prev := meta.FindStatusCondition(old.Status.Conditions, c.Type)
		if prev != nil && prev.Status == c.Status {
			continue
		}
		bad := (c.Type == v1alpha1.ConditionValid) == (c.Status == metav1.ConditionFalse)
		switch {
		case bad:
			r.Recorder.Eventf(old, nil, corev1.EventTypeWarning, c.Reason, "Status", "%s", c.Message)
		case prev != nil: // recovered
			r.Recorder.Eventf(old, nil, corev1.EventTypeNormal, c.Reason, "Status", "%s", c.Message)
		}
	}
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n-3], "") + "..."
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
