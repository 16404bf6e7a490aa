package mutate

import (
	"errors"
	"fmt"

	"github.com/tidwall/gjson"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	sjson "sigs.k8s.io/json"
)

// Decode decodes a JSON object of a kind of r into its Go type. It refuses a key given twice in
// the same object, which the API server never sends: the patch would have to guess which one counts.
func (r *Registry) Decode(raw []byte) (client.Object, Kind, error) {
	if err := checkObject(raw); err != nil {
		return nil, Kind{}, err
	}
	tm := gjson.GetManyBytes(raw, "apiVersion", "kind")
	apiVersion, kind := tm[0].String(), tm[1].String()
	k, ok := r.For(schema.FromAPIVersionAndKind(apiVersion, kind))
	if !ok {
		var tm metav1.TypeMeta
		dups, err := sjson.UnmarshalStrict(raw, &tm, sjson.DisallowDuplicateFields)
		switch {
		case err != nil:
			return nil, Kind{}, fmt.Errorf("decoding object: %w", err)
		case len(dups) > 0:
			return nil, Kind{}, fmt.Errorf("decoding object: %w", errors.Join(dups...))
		}
		return nil, Kind{}, unsupported(apiVersion, kind, r.supported)
	}
	obj, err := k.decode(raw)
	if err != nil {
		return nil, Kind{}, err
	}
	return obj, k, nil
}

// Decode decodes raw, a JSON object of kind k (the kind an admission request names), into k's Go type,
// as its registry's Decode does, with the same messages.
func (k Kind) Decode(raw []byte) (client.Object, error) {
	if err := checkObject(raw); err != nil {
		return nil, err
	}
	tm := gjson.GetManyBytes(raw, "apiVersion", "kind")
	if apiVersion, kind := tm[0].String(), tm[1].String(); schema.FromAPIVersionAndKind(apiVersion, kind) != k.GVK {
		return nil, unsupported(apiVersion, kind, k.supported)
	}
	return k.decode(raw)
}

func unsupported(apiVersion, kind, supported string) error {
	return fmt.Errorf("unsupported kind %q (apiVersion %q): supported are %s", kind, apiVersion, supported)
}

// checkObject refuses raw that is not a JSON object. The probes read only what they need; the decoder
// checks the whole of raw.
func checkObject(raw []byte) error {
	if doc := parseView(raw); !doc.IsObject() {
		var v any // for the decoder's message, which says where
		if err := sjson.UnmarshalCaseSensitivePreserveInts(raw, &v); err != nil {
			return fmt.Errorf("decoding object: %w", err)
		}
		return fmt.Errorf("decoding object: want a JSON object, got %s", jsonKind(doc))
	}
	return nil
}

func (k Kind) decode(raw []byte) (client.Object, error) {
	if k.adapter == nil {
		return nil, errors.New("decoding object: no kind given")
	}
	obj := k.New()
	// Case-sensitive, as the API server decodes: a "Spec" key is an unknown field, not spec.
	dups, err := sjson.UnmarshalStrict(raw, obj, sjson.DisallowDuplicateFields)
	switch {
	case err != nil:
		return nil, fmt.Errorf("decoding %s: %w", k.GVK.Kind, err)
	case len(dups) > 0:
		return nil, fmt.Errorf("decoding %s: %w", k.GVK.Kind, errors.Join(dups...))
	}
	if got := obj.GetObjectKind().GroupVersionKind(); got != k.GVK {
		return nil, fmt.Errorf("decoding %s: apiVersion and kind read as %q %q", k.GVK.Kind, got.GroupVersion().String(), got.Kind)
	}
	return obj, nil
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
