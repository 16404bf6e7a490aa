package policy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kueuev1beta1 "sigs.k8s.io/kueue/apis/kueue/v1beta1"
	kueuev1beta2 "sigs.k8s.io/kueue/apis/kueue/v1beta2"
	"sigs.k8s.io/yaml"

	"github.com/silogen/kaiwo-webhook/api/v1alpha1"
)

// strictDecoder decodes the kinds Load accepts, failing on unknown and duplicate
// fields (Kueue decodes its configuration the same way).
var strictDecoder = func() runtime.Decoder {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		v1alpha1.AddToScheme, kueuev1beta1.AddToScheme, kueuev1beta2.AddToScheme, corev1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err) // static registration of known types cannot fail
		}
	}
	return serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer()
}()

var (
	kaiwoPolicyGVK = v1alpha1.GroupVersion.WithKind("KaiwoPolicy")
	flavorGroup    = kueuev1beta2.GroupVersion.Group
	listGVK        = schema.GroupVersionKind{Version: "v1", Kind: "List"}
)

// Load reads multi-document YAML (or JSON) holding KaiwoPolicy documents and,
// optionally, the kueue.x-k8s.io ResourceFlavors (v1beta1 or v1beta2) that their
// gpusPerNodeFrom read. A v1 List or a KaiwoPolicyList, as kubectl get -o yaml
// prints them, is read item by item. Decoding is strict: an unknown or duplicate
// field, another kind, or a repeated name is an error that names the document
// (counted from 1, empty documents not counted). Load does not validate the
// policies; Compile does.
func Load(r io.Reader) ([]v1alpha1.KaiwoPolicy, Flavors, error) {
	var (
		policies []v1alpha1.KaiwoPolicy
		flavors  = Flavors{}
		names    = map[string]string{}
	)
	add := func(where string, doc []byte) error {
		obj, err := decodeStrict(doc)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		switch o := obj.(type) {
		case *v1alpha1.KaiwoPolicy:
			if prev, ok := names[o.Name]; ok && o.Name != "" {
				return fmt.Errorf("%s: KaiwoPolicy %q is already defined in %s", where, o.Name, prev)
			}
			names[o.Name] = where
			policies = append(policies, *o)
		case *kueuev1beta2.ResourceFlavor:
			return addFlavor(flavors, where, o.Name, o.Spec.NodeLabels)
		case *kueuev1beta1.ResourceFlavor:
			return addFlavor(flavors, where, o.Name, o.Spec.NodeLabels)
		}
		return nil
	}

	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	for n := 0; ; {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("document %d: %w", n+1, err)
		}
		if isEmptyDocument(doc) {
			continue
		}
		n++
		where := fmt.Sprintf("document %d", n)
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", where, err)
		}
		gvk := tm.GroupVersionKind()
		if gvk != listGVK && gvk != v1alpha1.GroupVersion.WithKind("KaiwoPolicyList") {
			if err := add(where, doc); err != nil {
				return nil, nil, err
			}
			continue
		}
		var list struct {
			Items []runtime.RawExtension `json:"items"`
		}
		if err := yaml.Unmarshal(doc, &list); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", where, err)
		}
		for i, item := range list.Items {
			if gvk.Kind != listGVK.Kind && !bytes.Contains(item.Raw, []byte(`"kind"`)) {
				item.Raw = withTypeMeta(item.Raw, kaiwoPolicyGVK)
			}
			if err := add(fmt.Sprintf("%s, item %d", where, i+1), item.Raw); err != nil {
				return nil, nil, err
			}
		}
	}
	return policies, flavors, nil
}

func addFlavor(flavors Flavors, where, name string, nodeLabels map[string]string) error {
	if _, ok := flavors[name]; ok {
		return fmt.Errorf("%s: ResourceFlavor %q is already defined", where, name)
	}
	if nodeLabels == nil {
		nodeLabels = map[string]string{}
	}
	flavors[name] = nodeLabels
	return nil
}

// decodeStrict decodes one document of a kind Load accepts.
func decodeStrict(doc []byte) (runtime.Object, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	gvk := tm.GroupVersionKind()
	switch {
	case tm.Kind == "" || tm.APIVersion == "":
		return nil, fmt.Errorf("apiVersion and kind must be set: %s or kueue.x-k8s.io/v1beta2 ResourceFlavor", kaiwoPolicyGVK.GroupVersion())
	case gvk == kaiwoPolicyGVK:
	case gvk.Group == flavorGroup && gvk.Kind == "ResourceFlavor" && (gvk.Version == "v1beta1" || gvk.Version == "v1beta2"):
	default:
		return nil, fmt.Errorf("kind %q (apiVersion %q) is not supported: must be KaiwoPolicy (%s) or ResourceFlavor (kueue.x-k8s.io/v1beta1, kueue.x-k8s.io/v1beta2)",
			tm.Kind, tm.APIVersion, kaiwoPolicyGVK.GroupVersion())
	}
	obj, _, err := strictDecoder.Decode(doc, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", describe(tm, doc), err)
	}
	return obj, nil
}

// decodePodTemplateSpec strictly decodes a pod template, as the body of a
// PodTemplate so that unknown fields are named by their path (spec.containers...).
func decodePodTemplateSpec(spec []byte) error {
	doc := append([]byte(`{"apiVersion":"v1","kind":"PodTemplate","template":`), spec...)
	doc = append(doc, '}')
	_, _, err := strictDecoder.Decode(doc, nil, nil)
	if err == nil {
		return nil
	}
	msg := strings.ReplaceAll(err.Error(), `"template.`, `"`)
	return errors.New(strings.ReplaceAll(msg, ".template.", "."))
}

// describe names a document in errors: its kind and, when known, its name.
func describe(tm metav1.TypeMeta, doc []byte) string {
	var meta struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &meta); err == nil && meta.Metadata.Name != "" {
		return fmt.Sprintf("%s %q", tm.Kind, meta.Metadata.Name)
	}
	return tm.Kind
}

func withTypeMeta(raw []byte, gvk schema.GroupVersionKind) []byte {
	head := fmt.Sprintf(`{"apiVersion":%q,"kind":%q,`, gvk.GroupVersion(), gvk.Kind)
	body := bytes.TrimSpace(raw)
	if len(body) < 2 || body[0] != '{' {
		return raw
	}
	if bytes.Equal(bytes.TrimSpace(body[1:]), []byte("}")) {
		return []byte(head[:len(head)-1] + "}")
	}
	return append([]byte(head), body[1:]...)
}

// isEmptyDocument reports whether a YAML document holds only comments and space.
func isEmptyDocument(doc []byte) bool {
	for _, line := range bytes.Split(doc, []byte("\n")) {
		l := bytes.TrimSpace(line)
		if len(l) > 0 && l[0] != '#' && !bytes.Equal(l, []byte("---")) {
			return false
		}
	}
	return true
}
