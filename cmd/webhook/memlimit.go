package main

import (
	"fmt"
	"strconv"
)

// memoryLimitEnv carries the container's memory limit in bytes (a resourceFieldRef on
// limits.memory in the manifests).
const memoryLimitEnv = "MEMORY_LIMIT"

// goMemLimit is the Go memory limit to set: 90% of the container's memory limit, leaving headroom
// for what the Go runtime does not count (stacks of threads, cgo, the page cache of the binary),
// so the garbage collector works harder before the OOM killer steps in. It is 0 (leave the
// runtime's) when GOMEMLIMIT is set, which wins, or when no limit is given.
func goMemLimit(getenv func(string) string) (int64, error) {
	if getenv("GOMEMLIMIT") != "" {
		return 0, nil
	}
	v := getenv(memoryLimitEnv)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s=%q: must be the container's memory limit in bytes, a positive integer", memoryLimitEnv, v)
	}
	return n / 10 * 9, nil
}
