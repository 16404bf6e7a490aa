package mutate_test

import (
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/pkg/mutate"
)

// kinds is the registry the tests run with: the built-in kinds, as serve and mutate are given them.
var kinds = mutate.Builtin()

// kindOf is the kind of a typed object, by its apiVersion and kind; the zero Kind when it is not handled.
func kindOf(obj client.Object) mutate.Kind {
	k, _ := kinds.ForObject(obj)
	return k
}

// mutateIn is mutate.Mutate with the kind of in.Object, as the registry's Decode would give it.
func mutateIn(in mutate.Input) (*mutate.Output, error) {
	in.Kind = kindOf(in.Object)
	return mutate.Mutate(in)
}

// validateIn is mutate.Validate with the kind of r.Object.
func validateIn(r mutate.Review) ([]string, error) {
	r.Kind = kindOf(r.Object)
	return mutate.Validate(r)
}
