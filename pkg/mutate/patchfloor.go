package mutate

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// patchFloor is a lower bound of the JSON patch operations that turn the input's workload inW into
// outW, read off the mutated objects in one pass: every container the input had (same template, same
// index, same name) whose env or volume mounts list Kaiwo made longer needs at least one add in that
// list (the new entries, or the whole list where the input had none), and the adds of two lists or of
// two containers never merge. Everything else Kaiwo writes only adds to it. It lets a mutation that
// must end past MaxPatchOperations be denied before the patch is computed and fitted to the raw object,
// which costs the most for the largest objects.
func patchFloor(inW, outW workload) int {
	ins := templatesByPath(inW)
	n := 0
	for _, t := range outW.templates() {
		it := ins[t.key()]
		if it == nil {
			continue
		}
		ics, ocs := it.Spec.Containers, t.spec.Spec.Containers
		for i := range min(len(ics), len(ocs)) {
			ic, oc := &ics[i], &ocs[i]
			if ic.Name != oc.Name {
				continue
			}
			if len(oc.Env) > len(ic.Env) {
				n++
			}
			if len(oc.VolumeMounts) > len(ic.VolumeMounts) {
				n++
			}
		}
	}
	return n
}

// checkPatchFloor denies a mutation whose patch needs more than MaxPatchOperations by patchFloor,
// naming the bound it found, as checkPatch names the count. ts are the input's templates: the floor is
// at most two per app container of the input, so an object with fewer is not walked again (the common
// case allocates nothing).
func checkPatchFloor(ts []template, inW, outW workload) *Denial {
	containers := 0
	for _, t := range ts {
		containers += len(t.spec.Spec.Containers)
	}
	if 2*containers <= MaxPatchOperations {
		return nil
	}
	n := patchFloor(inW, outW)
	if n <= MaxPatchOperations {
		return nil
	}
	return &Denial{ReasonLimit, field.ErrorList{field.Invalid(field.NewPath("spec"), fmt.Sprintf("at least %d patch operations", n),
		fmt.Sprintf("must need a JSON patch of at most %d operations: fewer containers, templates or env entries", MaxPatchOperations))}}
}
