package mutate

import corev1 "k8s.io/api/core/v1"

// smallContainerList is the length up to which containerIndex scans instead of building a map: pod
// templates hold a few containers, so the common case allocates nothing.
const smallContainerList = 16

// containerIndex finds containers by name in one list in constant time, so that matching every
// container of one template against another's is linear in the containers, not quadratic.
type containerIndex struct {
	cs  []corev1.Container
	pos map[string]int // first container of each name; nil for a short list
}

func indexContainers(cs []corev1.Container) containerIndex {
	x := containerIndex{cs: cs}
	if len(cs) > smallContainerList {
		x.pos = make(map[string]int, len(cs))
		for i := range cs {
			if _, dup := x.pos[cs[i].Name]; !dup {
				x.pos[cs[i].Name] = i
			}
		}
	}
	return x
}

// named is the first container called name, as containerNamed finds it, or nil.
func (x containerIndex) named(name string) *corev1.Container {
	if x.pos == nil {
		return containerNamed(x.cs, name)
	}
	if i, ok := x.pos[name]; ok {
		return &x.cs[i]
	}
	return nil
}
