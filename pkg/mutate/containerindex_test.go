package mutate

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// The index finds what the linear scan finds, short list or long, duplicates and missing names included.
func TestContainerIndexMatchesScan(t *testing.T) {
	for _, n := range []int{0, 3, smallContainerList, smallContainerList + 1, 200} {
		cs := make([]corev1.Container, n)
		for i := range cs {
			cs[i] = corev1.Container{Name: fmt.Sprintf("c%d", i%(n/2+1)), Image: fmt.Sprint(i)} // names repeat in the second half
		}
		x := indexContainers(cs)
		for i := range n + 2 {
			name := fmt.Sprintf("c%d", i)
			if got, want := x.named(name), containerNamed(cs, name); got != want {
				t.Errorf("%d containers, %s: index found %p, scan %p", n, name, got, want)
			}
		}
	}
}
