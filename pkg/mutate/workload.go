package mutate

import (
	"errors"
	"fmt"
	"reflect"

	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	"github.com/tidwall/gjson"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	sjson "sigs.k8s.io/json"
)

// Kind registers one workload kind: how to make an empty object and how to adapt a decoded one.
type Kind struct {
	GVK schema.GroupVersionKind
	// Serving kinds default to no queueing and mount code at /workload/app; they are also mutated on UPDATE.
	Serving bool
	New     func() client.Object
	adapt   func(obj client.Object, raw []byte) (workload, error)
}

// Kinds is the explicit list of supported kinds.
var Kinds = []Kind{jobKind, rayJobKind, rayServiceKind, deploymentKind, cronJobKind, statefulSetKind, podKind}

// KindFor finds the registered kind of gvk.
func KindFor(gvk schema.GroupVersionKind) (Kind, bool) {
	for _, k := range Kinds {
		if k.GVK == gvk {
			return k, true
		}
	}
	return Kind{}, false
}

// KindOf finds the registered kind of a typed object.
func KindOf(obj client.Object) (Kind, bool) {
	for _, k := range Kinds {
		if reflect.TypeOf(k.New()) == reflect.TypeOf(obj) {
			return k, true
		}
	}
	return Kind{}, false
}

// Decode decodes a JSON object of a registered kind into its Go type. It refuses a key given twice in
// the same object, which the API server never sends: the patch would have to guess which one counts.
func Decode(raw []byte) (client.Object, Kind, error) {
	// The probes read only what they need; the decoder below checks the whole of raw.
	if doc := parseView(raw); !doc.IsObject() {
		var v any // for the decoder's message, which says where
		if err := sjson.UnmarshalCaseSensitivePreserveInts(raw, &v); err != nil {
			return nil, Kind{}, fmt.Errorf("decoding object: %w", err)
		}
		return nil, Kind{}, fmt.Errorf("decoding object: want a JSON object, got %s", jsonKind(doc))
	}
	tm := gjson.GetManyBytes(raw, "apiVersion", "kind")
	apiVersion, kind := tm[0].String(), tm[1].String()
	gvk := schema.FromAPIVersionAndKind(apiVersion, kind)
	k, ok := KindFor(gvk)
	if !ok {
		var tm metav1.TypeMeta
		dups, err := sjson.UnmarshalStrict(raw, &tm, sjson.DisallowDuplicateFields)
		switch {
		case err != nil:
			return nil, Kind{}, fmt.Errorf("decoding object: %w", err)
		case len(dups) > 0:
			return nil, Kind{}, fmt.Errorf("decoding object: %w", errors.Join(dups...))
		}
		return nil, Kind{}, fmt.Errorf("unsupported kind %q (apiVersion %q): supported are %s", kind, apiVersion, supportedKinds())
	}
	obj := k.New()
	// Case-sensitive, as the API server decodes: a "Spec" key is an unknown field, not spec.
	dups, err := sjson.UnmarshalStrict(raw, obj, sjson.DisallowDuplicateFields)
	switch {
	case err != nil:
		return nil, Kind{}, fmt.Errorf("decoding %s: %w", kind, err)
	case len(dups) > 0:
		return nil, Kind{}, fmt.Errorf("decoding %s: %w", kind, errors.Join(dups...))
	}
	if got := obj.GetObjectKind().GroupVersionKind(); got != gvk {
		return nil, Kind{}, fmt.Errorf("decoding %s: apiVersion and kind read as %q %q", kind, got.GroupVersion().String(), got.Kind)
	}
	return obj, k, nil
}

// jsonKind names the type of a JSON value for messages.
func jsonKind(v gjson.Result) string {
	switch {
	case v.IsArray():
		return "an array"
	case v.Type == gjson.String:
		return "a string"
	case v.Type == gjson.Number:
		return "a number"
	case v.Type == gjson.True || v.Type == gjson.False:
		return "a boolean"
	}
	return "null"
}

func supportedKinds() string {
	s := ""
	for i, k := range Kinds {
		if i > 0 {
			s += ", "
		}
		s += k.GVK.GroupVersion().String() + " " + k.GVK.Kind
	}
	return s
}

// template is one pod template of a workload, with its path for messages.
type template struct {
	path *field.Path
	spec *corev1.PodTemplateSpec
}

// plan says where GPUs go and what the NUM_* env vars say.
type plan struct {
	// replicas and perReplica feed NUM_REPLICAS and NUM_GPUS_PER_REPLICA; NUM_GPUS is their product.
	replicas, perReplica int32
	// target gets perReplica GPUs on its GPU container; nil places nothing.
	target *template
	notes  []string
}

// workload adapts one kind to the features, which are written once against pod templates.
type workload interface {
	object() client.Object
	// templates lists every managed pod template in a stable order.
	templates() []template
	// pods is, for each template in the order of templates, the most pods of it that run at once.
	pods() []pods
	// check reports what the kind cannot take at all.
	check() field.ErrorList
	// plan decides GPU placement for s.gpus; it may set worker counts.
	plan(s *settings) (plan, field.ErrorList)
	// queue applies Kueue's suspend knobs and the kind's Kueue requirements when s.queued.
	queue(s *settings) ([]string, field.ErrorList)
}

// finisher is a workload with a TTL after it finishes.
type finisher interface {
	// ttl is the current TTL (nil when unset) and its path; ok is false when the object cannot take one.
	ttl() (cur *int32, path *field.Path, ok bool)
	setTTL(int32)
}

var (
	jobKind = Kind{
		GVK:   batchv1.SchemeGroupVersion.WithKind("Job"),
		New:   func() client.Object { return &batchv1.Job{} },
		adapt: func(o client.Object, _ []byte) (workload, error) { return (*job)(o.(*batchv1.Job)), nil },
	}
	deploymentKind = Kind{
		GVK:     appsv1.SchemeGroupVersion.WithKind("Deployment"),
		Serving: true,
		New:     func() client.Object { return &appsv1.Deployment{} },
		adapt:   func(o client.Object, _ []byte) (workload, error) { return (*deployment)(o.(*appsv1.Deployment)), nil },
	}
	rayJobKind = Kind{
		GVK: rayv1.GroupVersion.WithKind("RayJob"),
		New: func() client.Object { return &rayv1.RayJob{} },
		adapt: func(o client.Object, raw []byte) (workload, error) {
			e := explicitRayJob(raw)
			return &rayJob{RayJob: o.(*rayv1.RayJob), keepCluster: e.keepCluster, zeroTTL: e.zeroTTL}, nil
		},
	}
	rayServiceKind = Kind{
		GVK:     rayv1.GroupVersion.WithKind("RayService"),
		Serving: true,
		New:     func() client.Object { return &rayv1.RayService{} },
		adapt:   func(o client.Object, _ []byte) (workload, error) { return (*rayService)(o.(*rayv1.RayService)), nil },
	}
)

// explicit holds values in raw that a RayJob's Go type cannot tell from unset.
type explicit struct {
	keepCluster bool // spec.shutdownAfterJobFinishes: false
	zeroTTL     bool // spec.ttlSecondsAfterFinished: 0
}

func explicitRayJob(raw []byte) explicit {
	if len(raw) == 0 {
		return explicit{}
	}
	v := gjson.GetManyBytes(raw, "spec.shutdownAfterJobFinishes", "spec.ttlSecondsAfterFinished")
	return explicit{
		keepCluster: v[0].Type == gjson.False,
		zeroTTL:     v[1].Type == gjson.Number && v[1].Raw == "0",
	}
}
