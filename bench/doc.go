// Package bench measures the admission path side by side with its floor and its peers; `make bench`
// runs it (hack/bench.sh) and rewrites BENCHMARKS.md and bench/results.json.
package bench
