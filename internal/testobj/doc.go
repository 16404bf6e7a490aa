// Package testobj builds workload objects for tests: MakeJob("j", "ns").Annotate(k, v).Obj().
package testobj
