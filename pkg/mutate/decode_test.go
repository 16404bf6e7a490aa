package mutate_test

import (
	"strings"
	"testing"
)

// TestDecodeErrors: what Decode refuses, each with a message that says what is wrong and where.
func TestDecodeErrors(t *testing.T) {
	for name, tc := range map[string]struct{ raw, want string }{
		"not json":        {`{"apiVersion":`, "decoding object: unexpected end of JSON input"},
		"array":           {`[{"apiVersion":"batch/v1","kind":"Job"}]`, "want a JSON object, got an array"},
		"string":          {`"Job"`, "want a JSON object, got a string"},
		"null":            {`null`, "want a JSON object, got null"},
		"unsupported":     {`{"apiVersion":"v1","kind":"ConfigMap"}`, `unsupported kind "ConfigMap" (apiVersion "v1"): supported are batch/v1 Job, ray.io/v1 RayJob`},
		"bad value":       {`{"apiVersion":"batch/v1","kind":"Job","spec":{"parallelism":"many"}}`, "decoding Job: json: cannot unmarshal string into Go struct field JobSpec.spec.parallelism of type int32"},
		"duplicate field": {`{"apiVersion":"batch/v1","kind":"Job","spec":{"suspend":true,"suspend":false}}`, `decoding Job: duplicate field "spec.suspend"`},
		"duplicate kind":  {`{"apiVersion":"v1","kind":"ConfigMap","apiVersion":"batch/v1","kind":"Job"}`, `decoding object: duplicate field "apiVersion"`},
		"duplicate label": {`{"apiVersion":"batch/v1","kind":"Job","metadata":{"labels":{"a":"1","a":"2"}}}`, `duplicate field "metadata.labels.a"`},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := kinds.Decode([]byte(tc.raw))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Decode(%s) = %v, want an error containing %q", tc.raw, err, tc.want)
			}
		})
	}
}
