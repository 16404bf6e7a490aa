package mutate

import (
	"github.com/tidwall/gjson"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// UnhandledKind is a GPU-capable kind Kaiwo does not handle (yet): in an Enforce namespace the validating
// webhook denies an object of it that asks for GPUs (Registry.ValidateUnhandled), unless a controller
// creates it for a workload that was checked.
type UnhandledKind struct {
	GVK schema.GroupVersionKind
	// Resource is the kind's resource (plural, lower case), as the webhook rules name it.
	Resource string
	// Templates are where the kind keeps its pod templates, as KindInfo.Templates; "" is the object itself
	// (a Pod).
	Templates []string
	// CreateOnly: only CREATE is checked (a Pod, whose GPU requests cannot change).
	CreateOnly bool
	// Controlled: a handled kind's controller creates objects of this kind from a template that was checked
	// (a Deployment's ReplicaSets, a RayJob's RayClusters). Their controller owner reference exempts what they
	// create in turn, and every UPDATE of one is checked, so that a team user's edit is held to the rules of
	// the workload that controls it (ValidateUnhandledUpdate reads it through controlled).
	Controlled bool
	// Note is what the generated webhook rule says of the kind, as a comment.
	Note string
	// controlled reads an object of a Controlled kind.
	controlled func(raw []byte) (podSource, error)
}

// gpuKinds are the built-in registry's unhandled kinds. A kind that becomes handled leaves this list.
func gpuKinds() []UnhandledKind {
	return []UnhandledKind{
		{GVK: corev1.SchemeGroupVersion.WithKind("Pod"), Resource: "pods", Templates: []string{""}, CreateOnly: true,
			Note: "Only GPU Pods that no workload we check controls, or that a team user creates: the Pods a Job, " +
				"ReplicaSet or RayCluster controller creates were checked as that workload, and the busy Pod path is " +
				"never slowed by the webhook. A controller is a service account of another namespace or a system: " +
				"user (not anonymous); an owner reference a team user writes by hand exempts nothing. The owner " +
				"list and the users are the server's (Registry.ValidateUnhandledBy)."},
		{GVK: appsv1.SchemeGroupVersion.WithKind("ReplicaSet"), Resource: "replicasets", Controlled: true,
			Templates: []string{"spec.template"}, controlled: controlledReplicaSetOf,
			Note: "A Deployment's ReplicaSets were checked as the Deployment; a ReplicaSet written by hand would " +
				"otherwise run GPU Pods the Pod webhook exempts. An UPDATE is sent whatever controls it, as for " +
				"RayClusters."},
		{GVK: appsv1.SchemeGroupVersion.WithKind("StatefulSet"), Resource: "statefulsets", Templates: []string{"spec.template"},
			Note: "statefulsets/scale is not sent: a GPU StatefulSet cannot be created or updated in an Enforce " +
				"namespace, so only one older than the policy could be scaled, and Kaiwo does not count a kind " +
				"it does not handle."},
		{GVK: appsv1.SchemeGroupVersion.WithKind("DaemonSet"), Resource: "daemonsets", Templates: []string{"spec.template"}},
		{GVK: batchv1.SchemeGroupVersion.WithKind("CronJob"), Resource: "cronjobs", Templates: []string{"spec.jobTemplate.spec.template"}},
	}
}

// Unhandled are copies of the registry's unhandled GPU-capable kinds.
func (r *Registry) Unhandled() []UnhandledKind {
	out := make([]UnhandledKind, len(r.unhandled))
	for i, u := range r.unhandled {
		u.Templates = append([]string(nil), u.Templates...)
		out[i] = u
	}
	return out
}

// UnhandledFor finds the unhandled kind of a resource, as an admission request names it.
func (r *Registry) UnhandledFor(gr schema.GroupResource) (UnhandledKind, bool) {
	for _, u := range r.unhandled {
		if u.GVK.Group == gr.Group && u.Resource == gr.Resource {
			return u, true
		}
	}
	return UnhandledKind{}, false
}

// unhandledOf finds the unhandled kind of a JSON object by its apiVersion and kind.
func (r *Registry) unhandledOf(doc gjson.Result) (UnhandledKind, bool) {
	gvk := schema.FromAPIVersionAndKind(doc.Get("apiVersion").String(), doc.Get("kind").String())
	for _, u := range r.unhandled {
		if u.GVK == gvk {
			return u, true
		}
	}
	return UnhandledKind{}, false
}

// Owners are the controllers whose controller owner reference exempts an unhandled object that a controller
// creates: the handled kinds and the Controlled unhandled ones, as "apiVersion/kind" (batch/v1/Job).
func (r *Registry) Owners() []string {
	var out []string
	for _, k := range r.kinds {
		out = append(out, k.GVK.GroupVersion().String()+"/"+k.GVK.Kind)
	}
	for _, u := range r.unhandled {
		if u.Controlled {
			out = append(out, u.GVK.GroupVersion().String()+"/"+u.GVK.Kind)
		}
	}
	return out
}

// podOwner reports whether a controller of apiVersion and kind is one of Owners.
func (r *Registry) podOwner(apiVersion, kind string) bool {
	gvk := schema.FromAPIVersionAndKind(apiVersion, kind)
	if _, ok := r.For(gvk); ok {
		return true
	}
	for _, u := range r.unhandled {
		if u.Controlled && u.GVK == gvk {
			return true
		}
	}
	return false
}
