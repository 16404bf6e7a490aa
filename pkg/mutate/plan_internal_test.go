package mutate

import (
	"math"
	"testing"
)

// TestLargestDivisor: the largest divisor within a node, as the downward search found it, also for a
// prime total near the int32 limit and a node as large as a policy may say (up to 2^31-1 GPUs).
func TestLargestDivisor(t *testing.T) {
	for n := int64(1); n <= 200; n++ {
		for max := int64(1); max <= 40; max++ {
			want := max
			for n%want != 0 {
				want--
			}
			if got := largestDivisor(n, max); got != want {
				t.Fatalf("largestDivisor(%d, %d) = %d, want %d", n, max, got, want)
			}
		}
	}
	if got := largestDivisor(math.MaxInt32, math.MaxInt32-1); got != 1 { // 2^31-1 is prime
		t.Errorf("largestDivisor(2^31-1, 2^31-2) = %d, want 1", got)
	}
	if got := largestDivisor(2*1_000_003, 2_000_000); got != 1_000_003 {
		t.Errorf("largestDivisor(2*1000003, 2000000) = %d, want 1000003", got)
	}
}
