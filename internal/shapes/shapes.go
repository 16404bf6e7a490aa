// Package shapes builds the worst-case workloads a user can send, as raw JSON: many containers, many
// env entries, many Ray groups, many annotation keys, deep nesting, the largest request body.
package shapes

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Shape is one object as the API server would send it.
type Shape struct {
	Name string
	Kind string // Job or RayJob
	Raw  []byte
}

// MaxRequestBytes is the largest request body the API server accepts (3 MiB).
const MaxRequestBytes = 3 << 20

// EnvAnnotation is a kaiwo.silogen.ai/env value of n plain entries, each value valueLen bytes.
func EnvAnnotation(n, valueLen int) string {
	var b strings.Builder
	b.WriteString("envVars:\n")
	v := strings.Repeat("v", valueLen)
	for i := range n {
		fmt.Fprintf(&b, "  - {name: E%d, value: %q}\n", i, v)
	}
	return b.String()
}

func container(i int) map[string]any {
	return map[string]any{"name": fmt.Sprintf("c%d", i), "image": "busybox"}
}

func containers(n int) []any {
	cs := make([]any, n)
	for i := range cs {
		cs[i] = container(i)
	}
	return cs
}

func podTemplate(cs []any) map[string]any {
	return map[string]any{"spec": map[string]any{"restartPolicy": "Never", "containers": cs}}
}

func job(name string, annots map[string]string, spec map[string]any) Shape {
	obj := map[string]any{
		"apiVersion": "batch/v1", "kind": "Job",
		"metadata": map[string]any{"name": name, "namespace": "team-ml", "annotations": annots},
		"spec":     spec,
	}
	b, err := json.Marshal(obj)
	if err != nil {
		panic(err) // plain data
	}
	return Shape{Name: name, Kind: "Job", Raw: b}
}

// Containers is a Job asking for a GPU with n containers and, if envEntries > 0, an env annotation of
// envEntries entries of valueLen bytes, which Kaiwo copies into every container.
func Containers(n, envEntries, valueLen int) Shape {
	annots := map[string]string{"kaiwo.silogen.ai/gpus": "1"}
	if envEntries > 0 {
		annots["kaiwo.silogen.ai/env"] = EnvAnnotation(envEntries, valueLen)
	}
	return job(fmt.Sprintf("containers-%d-env-%d", n, envEntries), annots, map[string]any{"template": podTemplate(containers(n))})
}

// RayJob is a RayJob with groups worker groups of perGroup containers each, and an env annotation of
// envEntries entries.
func RayJob(groups, perGroup, envEntries int) Shape {
	workers := make([]any, groups)
	for g := range workers {
		workers[g] = map[string]any{"groupName": fmt.Sprintf("g%d", g), "replicas": 1, "minReplicas": 1, "maxReplicas": 1,
			"rayStartParams": map[string]any{}, "template": podTemplate(containers(perGroup))}
	}
	annots := map[string]string{"kaiwo.silogen.ai/gpus": "1"}
	if envEntries > 0 {
		annots["kaiwo.silogen.ai/env"] = EnvAnnotation(envEntries, 16)
	}
	obj := map[string]any{
		"apiVersion": "ray.io/v1", "kind": "RayJob",
		"metadata": map[string]any{"name": "rayjob-groups", "namespace": "team-ml", "annotations": annots},
		"spec": map[string]any{"entrypoint": "python main.py", "shutdownAfterJobFinishes": true, "rayClusterSpec": map[string]any{
			"headGroupSpec":    map[string]any{"rayStartParams": map[string]any{}, "template": podTemplate(containers(1))},
			"workerGroupSpecs": workers,
		}},
	}
	b, err := json.Marshal(obj)
	if err != nil {
		panic(err)
	}
	return Shape{Name: fmt.Sprintf("rayjob-%dx%d-env-%d", groups, perGroup, envEntries), Kind: "RayJob", Raw: b}
}

// UnknownKeys is a Job with n kaiwo.silogen.ai/ annotation keys that do not exist.
func UnknownKeys(n int) Shape {
	annots := map[string]string{}
	for i := range n {
		annots[fmt.Sprintf("kaiwo.silogen.ai/gpu%d", i)] = "1"
	}
	return job(fmt.Sprintf("unknown-keys-%d", n), annots, map[string]any{"template": podTemplate(containers(1))})
}

// Deep is a Job whose container carries an unknown field nested depth arrays deep (as a newer API
// version might), next to everything Kaiwo writes.
func Deep(depth int) Shape {
	s := job(fmt.Sprintf("deep-%d", depth), map[string]string{"kaiwo.silogen.ai/gpus": "1"}, map[string]any{"template": podTemplate(containers(1))})
	nested := strings.Repeat("[", depth) + strings.Repeat("]", depth)
	s.Raw = []byte(strings.Replace(string(s.Raw), `"image":"busybox"`, `"image":"busybox","x-deep":`+nested, 1))
	return s
}

// Largest is a Job of about MaxRequestBytes less room for the review around it (the largest request
// body the API server accepts): as many small containers as fit.
func Largest() Shape {
	one, _ := json.Marshal(container(100000))
	n := (MaxRequestBytes - 4096) / (len(one) + 1)
	s := Containers(n, 0, 0)
	s.Name = "largest-3mib"
	return s
}

// MaxStoredBytes is the largest object etcd stores (1.5 MiB, its default --max-request-bytes).
const MaxStoredBytes = 3 << 19

// LargestAt is a Job of about MaxStoredBytes with n containers, each padded with env vars to fill it.
func LargestAt(n int) Shape {
	per := (MaxStoredBytes - 4096) / n
	env := []any{}
	for size := 0; size+60 < per; size += 60 {
		env = append(env, map[string]any{"name": fmt.Sprintf("E%d", len(env)), "value": strings.Repeat("v", 30)})
	}
	cs := containers(n)
	for i := range cs {
		cs[i].(map[string]any)["env"] = env
	}
	s := job(fmt.Sprintf("largest-stored-%d-containers", n), map[string]string{"kaiwo.silogen.ai/gpus": "1"}, map[string]any{"template": podTemplate(cs)})
	return s
}

// Worst lists the worst shapes, each of which the webhook must answer fast: mutated with a bounded
// patch, or denied.
func Worst() []Shape {
	return []Shape{
		Containers(1000, 1000, 30), // the 95 KB Job: a large env annotation copied into 1,000 containers
		Containers(8000, 0, 0),     // many containers
		Containers(1, 2000, 1),     // many env entries
		Containers(1, 1, 60000),    // one large env value
		RayJob(300, 10, 20),        // the RayJob, 300 groups x 10 containers
		RayJob(1000, 1, 0),         // many groups
		UnknownKeys(1000),          // a "did you mean" per key
		UnknownKeys(20000),         // more keys than any error list should hold
		Deep(9000),                 // deep nesting, under the decoders' limit of 10,000
		Largest(),                  // the largest request body, as many containers as fit
		LargestAt(10000),           // the largest object etcd stores, the most containers allowed
		LargestAt(1000),            // the largest object etcd stores, fewer but larger containers
	}
}
