package mutate

import "sigs.k8s.io/controller-runtime/pkg/client"

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
