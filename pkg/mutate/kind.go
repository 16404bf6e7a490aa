package mutate

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Adapter is one handled kind's registration type: what the webhook rules and messages know of the kind,
// how to make an empty object of it, and how to adapt a decoded one to the features (a workload). Each
// kind's file holds its workload adapter type and its Adapter; Builtin lists the Adapters.
type Adapter interface {
	// Info describes the kind; the registry reads it once, when it is built.
	Info() KindInfo
	// New is an empty object of the kind's Go type.
	New() client.Object
	// adapt wraps obj, of the kind's Go type, without copying or changing it; raw is obj's JSON when
	// there is one, for what the Go type cannot tell from unset (nil offline on a typed object).
	adapt(obj client.Object, raw []byte) (workload, error)
}

// KindInfo is what the registry, the webhook rules and the messages know of a handled kind.
type KindInfo struct {
	GVK schema.GroupVersionKind
	// Resource is the kind's resource (plural, lower case), as the webhook rules name it.
	Resource string
	// Serving kinds default to no queueing and mount code at /workload/app.
	Serving bool
	// Update says the kind is mutated on UPDATE too (its pod templates may change after create); kinds
	// without it are mutated on CREATE only. Every handled kind is validated on CREATE and UPDATE.
	Update bool
	// Scale says the kind has a scale subresource: the validating webhook holds its growth to the policy's
	// limits. Its workload adapter implements setReplicas.
	Scale bool
	// Templates are where the kind keeps its pod templates, for the webhook's match conditions, which
	// look at them for GPU requests: dotted JSON field paths from the object's root, "[]" after a list
	// field meaning each of its items (spec.rayClusterSpec.workerGroupSpecs[].template). They are the
	// paths of the workload adapter's templates(), in the same order. "" is the object itself (a Pod). A
	// kind without a pod template (a TrainJob) declares instead where it keeps its container resources (a
	// ResourceRequirements), marked with the suffix ResourcesPath, under the path of its view template.
	Templates []string
	// PartOf are the workloads ("apiVersion/Kind", ray.io/v1/RayJob) whose controller makes an object of
	// this kind that it controls a part of them (a RayJob's RayCluster, a JobSet's Jobs): the mutating
	// webhook leaves a part alone and the validating one checks it as a controlled object (see parts.go).
	PartOf []string
	// QueueLabels are the dotted paths of label maps, besides the object's own, whose Kueue queue label the
	// server checks because the objects the kind's controller creates take them (a CronJob's
	// spec.jobTemplate.metadata.labels): the validating condition matches an object, new or old, with the
	// queue label there. They are the labels of the workload adapter's createdMeta().
	QueueLabels []string
	// Creates are the handled kinds of the objects the kind's controller creates from its pod templates with
	// a controller owner reference to it, when those are not Pods (a CronJob's Jobs); empty, its controller
	// creates Pods, directly or through objects Kaiwo does not handle (a Deployment's ReplicaSets). Objects
	// of a kind that a controller of one of its owners (Kind.Owners) creates are left alone: they were
	// checked as their owner.
	Creates []schema.GroupKind
	// SkipControllerUpdates: an object of the kind whose controller owner reference names one of its owners
	// cannot ask for more GPUs after create (a Pod), so its controller's UPDATEs are not sent; a team user's
	// UPDATE is held to the template rules the stored object kept (a toleration added to a pending Pod).
	SkipControllerUpdates bool
}

// ResourcesPath marks a KindInfo.Templates path that is a ResourceRequirements, not a pod template.
const ResourcesPath = "@resources"

// Kind is a registered kind: its description and its Adapter. The zero Kind is no kind.
type Kind struct {
	KindInfo
	adapter   Adapter
	supported string // the registry's kinds, for messages
	owners    []string
}

// Owners are the controllers whose controller owner reference on an object of the kind says it was made
// from a template Kaiwo checked as that controller, as "apiVersion/kind" (batch/v1/CronJob for a Job): the
// registry's owners (Registry.Owners) that create the kind (KindInfo.Creates), the kind itself excepted.
func (k Kind) Owners() []string { return slices.Clone(k.owners) }

// New is an empty object of the kind's Go type.
func (k Kind) New() client.Object { return k.adapter.New() }

// String names the kind as messages do: "batch/v1 Job".
func (k Kind) String() string { return k.GVK.GroupVersion().String() + " " + k.GVK.Kind }

func (k Kind) adapt(obj client.Object, raw []byte) (workload, error) {
	if k.adapter == nil {
		return nil, errors.New("no kind given for the object")
	}
	return k.adapter.adapt(obj, raw)
}

// scaler is a workload whose kind has a scale subresource (KindInfo.Scale).
type scaler interface{ setReplicas(int32) }

// Registry is the set of kinds the webhook handles. It is a value that the server, the offline command
// and the tests are given; it does not change once built.
type Registry struct {
	kinds     []Kind
	unhandled []UnhandledKind
	supported string // "batch/v1 Job, ...", for messages
}

// NewRegistry registers the kinds of adapters, in order, and the GPU-capable kinds that are not handled. A
// kind given twice (or both handled and unhandled), a GVK, resource or pod template path missing, or a scale
// subresource whose adapter cannot scale is an error.
func NewRegistry(adapters []Adapter, unhandled []UnhandledKind) (*Registry, error) {
	r := &Registry{}
	names := make([]string, 0, len(adapters))
	for _, a := range adapters {
		k := Kind{KindInfo: a.Info(), adapter: a}
		k.Templates, k.PartOf = slices.Clone(k.Templates), slices.Clone(k.PartOf)
		k.QueueLabels = slices.Clone(k.QueueLabels)
		k.Creates = slices.Clone(k.Creates)
		switch {
		case k.GVK.Version == "" || k.GVK.Kind == "" || k.Resource == "":
			return nil, fmt.Errorf("kind %q: apiVersion, kind and resource are required", k.String())
		case len(k.Templates) == 0:
			return nil, fmt.Errorf("kind %s: no pod template paths", k)
		}
		if _, dup := r.For(k.GVK); dup {
			return nil, fmt.Errorf("kind %s registered twice", k)
		}
		if k.Scale {
			w, err := k.adapt(a.New(), nil)
			if err != nil {
				return nil, fmt.Errorf("kind %s: %w", k, err)
			}
			if _, ok := w.(scaler); !ok {
				return nil, fmt.Errorf("kind %s has a scale subresource but its adapter cannot set replicas", k)
			}
		}
		r.kinds = append(r.kinds, k)
		names = append(names, k.String())
	}
	for _, u := range unhandled {
		name := u.GVK.GroupVersion().String() + " " + u.GVK.Kind
		switch {
		case u.GVK.Version == "" || u.GVK.Kind == "" || u.Resource == "":
			return nil, fmt.Errorf("unhandled kind %q: apiVersion, kind and resource are required", name)
		case len(u.Templates) == 0:
			return nil, fmt.Errorf("unhandled kind %s: no pod template paths", name)
		}
		gr := schema.GroupResource{Group: u.GVK.Group, Resource: u.Resource}
		if _, dup := r.ForResource(gr); dup {
			return nil, fmt.Errorf("kind %s is both handled and unhandled", name)
		}
		if _, dup := r.UnhandledFor(gr); dup {
			return nil, fmt.Errorf("unhandled kind %s registered twice", name)
		}
		u.Templates = slices.Clone(u.Templates)
		r.unhandled = append(r.unhandled, u)
	}
	r.supported = strings.Join(names, ", ")
	for i := range r.kinds {
		r.kinds[i].supported = r.supported
		r.kinds[i].owners = r.ownersOf(r.kinds[i].GVK)
	}
	return r, nil
}

// Builtin is a new registry of the kinds this build handles, and of the GPU-capable kinds it does not
// (gpuKinds).
func Builtin() *Registry {
	r, err := NewRegistry([]Adapter{
		jobKind{},
		rayJobKind{},
		rayServiceKind{},
		deploymentKind{},
		rayClusterKind{},
		jobSetKind{},
		leaderWorkerSetKind{},
		pyTorchJobKind{},
		trainJobKind{},
		cronJobKind{},
		statefulSetKind{},
		podKind{},
	}, gpuKinds())
	if err != nil {
		panic(err) // the built-in list is fixed at compile time; its tests build it
	}
	return r
}

// Kinds are copies of the registered kinds, in registration order.
func (r *Registry) Kinds() []Kind {
	out := slices.Clone(r.kinds)
	for i := range out {
		out[i].Templates = slices.Clone(out[i].Templates)
		out[i].QueueLabels = slices.Clone(out[i].QueueLabels)
		out[i].Creates = slices.Clone(out[i].Creates)
		out[i].owners = slices.Clone(out[i].owners)
	}
	return out
}

// For finds the kind of gvk. The kinds the lookups return share the registry's Templates: read only.
func (r *Registry) For(gvk schema.GroupVersionKind) (Kind, bool) {
	for _, k := range r.kinds {
		if k.GVK == gvk {
			return k, true
		}
	}
	return Kind{}, false
}

// ForGroupKind finds the kind of gk, in whichever version it is registered.
func (r *Registry) ForGroupKind(gk schema.GroupKind) (Kind, bool) {
	for _, k := range r.kinds {
		if k.GVK.GroupKind() == gk {
			return k, true
		}
	}
	return Kind{}, false
}

// ForResource finds the kind of a resource, as an admission request names it.
func (r *Registry) ForResource(gr schema.GroupResource) (Kind, bool) {
	for _, k := range r.kinds {
		if k.GVK.Group == gr.Group && k.Resource == gr.Resource {
			return k, true
		}
	}
	return Kind{}, false
}

// ForObject finds the kind of a typed object by its apiVersion and kind.
func (r *Registry) ForObject(obj client.Object) (Kind, bool) {
	return r.For(obj.GetObjectKind().GroupVersionKind())
}

// Supported names the registered kinds for messages: "batch/v1 Job, ray.io/v1 RayJob, ...".
func (r *Registry) Supported() string { return r.supported }

// as is obj as the Go type T of a kind, or an error naming both types.
func as[T client.Object](obj client.Object) (T, error) {
	t, ok := obj.(T)
	if !ok {
		var want T
		return want, fmt.Errorf("the object is a %T, not a %T", obj, want)
	}
	return t, nil
}
