package mutate

import (
	"slices"

	"github.com/tidwall/gjson"
	appsv1 "k8s.io/api/apps/v1"
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
	// Templates are where the kind keeps its pod templates, as KindInfo.Templates.
	Templates []string
	// Controlled: a handled kind's controller creates objects of this kind from a template that was checked
	// (a Deployment's ReplicaSets). Their controller owner reference exempts what they
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
		{GVK: appsv1.SchemeGroupVersion.WithKind("ReplicaSet"), Resource: "replicasets", Controlled: true,
			Templates: []string{"spec.template"}, controlled: controlledReplicaSetOf,
			Note: "A Deployment's ReplicaSets were checked as the Deployment; a ReplicaSet written by hand would " +
				"otherwise run GPU Pods the Pod webhook exempts. An UPDATE is sent whatever controls it."},
		{GVK: appsv1.SchemeGroupVersion.WithKind("DaemonSet"), Resource: "daemonsets", Templates: []string{"spec.template"}},
		// Kubeflow's other training jobs: their operators create the pods, each counted alone, so one of them
		// written by a team user would run any number of GPU pods past limits.maxGpusPerWorkload.
		kubeflowJob("v1", "TFJob", "tfjobs", "tfReplicaSpecs"),
		kubeflowJob("v2beta1", "MPIJob", "mpijobs", "mpiReplicaSpecs"),
		kubeflowJob("v1", "XGBoostJob", "xgboostjobs", "xgbReplicaSpecs"),
		kubeflowJob("v1", "PaddleJob", "paddlejobs", "paddleReplicaSpecs"),
		kubeflowJob("v1", "JAXJob", "jaxjobs", "jaxReplicaSpecs"),
	}
}

// Unhandled are copies of the registry's unhandled GPU-capable kinds.
func (r *Registry) Unhandled() []UnhandledKind {
	out := make([]UnhandledKind, len(r.unhandled))
	for i, u := range r.unhandled {
		u.Templates = slices.Clone(u.Templates)
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

// ownersOf are the Owners whose controllers create objects of gvk from a checked template (KindInfo.Creates;
// the Controlled unhandled kinds create Pods), gvk itself excepted: a Job's are the CronJob, a Pod's every
// owner that creates Pods. A kind whose controller makes parts of it (KindInfo.PartOf: a JobSet's Jobs, a
// LeaderWorkerSet's StatefulSets) creates those, not Pods.
func (r *Registry) ownersOf(gvk schema.GroupVersionKind) []string {
	pods := gvk == corev1.SchemeGroupVersion.WithKind("Pod")
	var out []string
	for _, k := range r.kinds {
		makesPods := len(k.Creates) == 0 && !r.makesParts(k)
		if k.GVK != gvk && (slices.Contains(k.Creates, gvk.GroupKind()) || pods && makesPods) {
			out = append(out, k.GVK.GroupVersion().String()+"/"+k.GVK.Kind)
		}
	}
	for _, u := range r.unhandled {
		if u.Controlled && pods {
			out = append(out, u.GVK.GroupVersion().String()+"/"+u.GVK.Kind)
		}
	}
	return out
}

// makesParts reports whether owner's controller makes objects of a handled kind that are parts of it.
func (r *Registry) makesParts(owner Kind) bool {
	name := owner.GVK.GroupVersion().String() + "/" + owner.GVK.Kind
	for _, k := range r.kinds {
		if slices.Contains(k.PartOf, name) {
			return true
		}
	}
	return false
}

// kubeflowJob is a kubeflow.org job kind whose pod templates are the values of its replica specs map.
func kubeflowJob(version, kind, resource, specs string) UnhandledKind {
	return UnhandledKind{GVK: schema.GroupVersionKind{Group: "kubeflow.org", Version: version, Kind: kind}, Resource: resource,
		Templates: []string{"spec." + specs + "{}.template"}}
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
