package offline

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/tidwall/gjson"
	"k8s.io/apimachinery/pkg/util/yaml"
	sigsyaml "sigs.k8s.io/yaml"
)

// readOld reads the stored objects of an UPDATE preview, by objectKey.
func readOld(in io.Reader) (map[string][]byte, error) {
	out := map[string][]byte{}
	reader := yaml.NewYAMLReader(bufio.NewReader(in))
	for i := 0; ; i++ {
		chunk, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("--old document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(stripComments(chunk))) == 0 {
			continue
		}
		raw, err := sigsyaml.YAMLToJSON(chunk)
		if err != nil {
			return nil, fmt.Errorf("--old document %d: not YAML: %w", i, err)
		}
		key := objectKey(raw)
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("--old document %d: %s is given twice", i, key)
		}
		out[key] = raw
	}
}

// objectKey names an object by apiVersion, kind, namespace and name.
func objectKey(raw []byte) string {
	v := gjson.GetManyBytes(raw, "apiVersion", "kind", "metadata.namespace", "metadata.name")
	return fmt.Sprintf("%s %s %s/%s", v[0].String(), v[1].String(), v[2].String(), v[3].String())
}
