package offline

import (
	"encoding/json"
	"fmt"
	"io"

	"gomodules.xyz/jsonpatch/v2"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
	"github.com/silogen/kaiwo-webhook/pkg/typedpatch"
)

// ObjectKey names an object: its kind, namespace and name.
type ObjectKey struct {
	Kind, Namespace, Name string
}

func keyOf(raw []byte) (ObjectKey, error) {
	var meta struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		return ObjectKey{}, err
	}
	return ObjectKey{meta.Kind, meta.Metadata.Namespace, meta.Metadata.Name}, nil
}

// LoadOld reads the stored objects of an UPDATE preview: a multi-document YAML stream, such as
// kubectl get -o yaml prints. Each object must be named and appear once.
func LoadOld(in io.Reader) (map[ObjectKey][]byte, error) {
	out := map[ObjectKey][]byte{}
	err := eachDocument(in, func(i int, chunk []byte) error {
		raw, err := sigsyaml.YAMLToJSON(chunk)
		if err != nil {
			return fmt.Errorf("document %d: not YAML: %w", i, err)
		}
		key, err := keyOf(raw)
		switch {
		case err != nil:
			return fmt.Errorf("document %d: not a Kubernetes object: %w", i, err)
		case key.Kind == "" || key.Name == "":
			return fmt.Errorf("document %d: an old object needs a kind and metadata.name", i)
		case out[key] != nil:
			return fmt.Errorf("document %d: %s %s/%s appears twice", i, key.Kind, key.Namespace, key.Name)
		}
		out[key] = raw
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// oldFor finds the stored object of key; a document without a namespace matches the one stored object
// of its kind and name, as kubectl apply would place it in the current namespace.
func oldFor(old map[ObjectKey][]byte, key ObjectKey) []byte {
	if raw, ok := old[key]; ok || key.Namespace != "" {
		return raw
	}
	var found []byte
	for k, raw := range old {
		if k.Kind == key.Kind && k.Name == key.Name {
			if found != nil {
				return nil // stored in several namespaces: ambiguous
			}
			found = raw
		}
	}
	return found
}

// validate runs the validating webhook on the object the mutation produced (raw with patch applied), as
// the API server would after every mutating webhook; old is the stored object on UPDATE, else nil.
func validate(kind mutate.Kind, raw []byte, patch []jsonpatch.Operation, old []byte, pol *policy.Policy, user string) ([]string, error) {
	final, err := typedpatch.Apply(raw, patch)
	if err != nil {
		return nil, fmt.Errorf("applying patch: %w", err)
	}
	obj, err := kind.Decode(final)
	if err != nil {
		return nil, err
	}
	r := mutate.Review{Operation: mutate.OpCreate, Kind: kind, Object: obj, Raw: final, Policy: pol, User: user}
	if old != nil {
		if r.Old, err = kind.Decode(old); err != nil {
			return nil, fmt.Errorf("the old object: %w", err)
		}
		r.Operation, r.OldRaw = mutate.OpUpdate, old
	}
	return mutate.Validate(r)
}
