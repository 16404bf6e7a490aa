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

// PatchFloor is patchFloor of in and out, both objects of raw's kind: the lower bound of the patch
// operations a mutation denies on before the patch is computed.
func PatchFloor(raw []byte, in, out client.Object) int {
	kind, _ := Builtin().ForObject(in)
	inW, err1 := kind.adapt(in, raw)
	outW, err2 := kind.adapt(out, raw)
	if err1 != nil || err2 != nil {
		return 0
	}
	return patchFloor(inW, outW)
}
