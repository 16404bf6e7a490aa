package mutate

import corev1 "k8s.io/api/core/v1"

// lookup finds the first element of a list by key. A short list is searched from its start; a longer
// one is indexed on first use and kept indexed as elements are appended, so that adding n elements to
// a list of m costs O(n+m), not O(n*m). One lookup serves one list, which is only appended to meanwhile.
type lookup[T any] struct {
	key   func(*T) string
	index map[string]int
}

// lookupIndexFrom is the length from which a list is indexed.
const lookupIndexFrom = 16

func newLookup[T any](key func(*T) string) *lookup[T] { return &lookup[T]{key: key} }

// find is the index of the first element of list with key k, or -1.
func (l *lookup[T]) find(list []T, k string) int {
	if l.index == nil && len(list) >= lookupIndexFrom {
		l.index = make(map[string]int, len(list))
		for i := range list {
			if _, dup := l.index[l.key(&list[i])]; !dup {
				l.index[l.key(&list[i])] = i
			}
		}
	}
	if l.index != nil {
		if i, ok := l.index[k]; ok {
			return i
		}
		return -1
	}
	for i := range list {
		if l.key(&list[i]) == k {
			return i
		}
	}
	return -1
}

// appended records the last element of list, just appended.
func (l *lookup[T]) appended(list []T) {
	if l.index == nil {
		return
	}
	if k := l.key(&list[len(list)-1]); !l.has(k) {
		l.index[k] = len(list) - 1
	}
}

func (l *lookup[T]) has(k string) bool {
	_, ok := l.index[k]
	return ok
}

func envName(e *corev1.EnvVar) string        { return e.Name }
func volumeName(v *corev1.Volume) string     { return v.Name }
func mountPath(m *corev1.VolumeMount) string { return m.MountPath }
