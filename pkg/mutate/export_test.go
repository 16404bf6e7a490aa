package mutate

import (
	"errors"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// JSONDiff is the patch of the JSON encodings, which Patch falls back to, for tests to compare with.
var JSONDiff = jsonDiff

// TypedDiffModels reports whether Patch diffs a and b as Go values, without the fallback.
func TypedDiffModels(a, b client.Object) bool {
	_, err := typedDiff(a, b)
	return !errors.Is(err, errNoTypedDiff)
}
