package mutate

import (
	"encoding/json"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
)

// Placed is what Kaiwo wrote into an object, in the spirit of Istio's sidecar.istio.io/status: names
// only, never values. It is kept in the kaiwo.silogen.ai/applied record so that an UPDATE can tell
// Kaiwo's earlier values (Kaiwo's to change or remove) from values the user wrote (a conflict).
type Placed struct {
	// Labels are the object's label keys Kaiwo set (the user label, set once, is not among them).
	Labels []string `json:"labels,omitempty"`
	// Templates are keyed by the pod template's path, e.g. spec.template.
	Templates map[string]*PlacedTemplate `json:"templates,omitempty"`
}

// PlacedTemplate is what Kaiwo wrote into one pod template.
type PlacedTemplate struct {
	Labels      []string `json:"labels,omitempty"`
	Volumes     []string `json:"volumes,omitempty"`
	Tolerations []string `json:"tolerations,omitempty"` // key:effect#hash
	PullSecrets []string `json:"imagePullSecrets,omitempty"`
	// NodeAffinity are required node affinity expressions on a GPU product label (gpu-model), as key#hash.
	NodeAffinity []string `json:"nodeAffinity,omitempty"`
	// Containers are keyed by container name.
	Containers map[string]*PlacedContainer `json:"containers,omitempty"`
}

// PlacedContainer is what Kaiwo wrote into one container.
type PlacedContainer struct {
	Resources []string `json:"resources,omitempty"` // limits/amd.com/gpu, requests/cpu, ...
	Env       []string `json:"env,omitempty"`
	Mounts    []string `json:"mounts,omitempty"` // mount paths
}

// maxPlacedBytes bounds the record (with about 1 KiB for the rest of it): a larger one is left out,
// and an UPDATE then treats every value as the user's (conflicts are denied as without a record).
const maxPlacedBytes = 8 * 1024

// readPlaced is the record in obj's applied annotation, or nil.
func readPlaced(obj client.Object) *Placed {
	v, ok := obj.GetAnnotations()[annotations.Applied]
	if !ok || len(v) > 2*maxPlacedBytes+4096 {
		return nil
	}
	var a Applied
	if json.Unmarshal([]byte(v), &a) != nil {
		return nil
	}
	return a.Placed
}

// bounded is p, or nil when it is empty; record leaves it out when it is too large.
func (p *Placed) bounded() *Placed {
	if p == nil || (len(p.Labels) == 0 && len(p.Templates) == 0) {
		return nil
	}
	return p
}

func (p *Placed) template(path string) *PlacedTemplate {
	if p.Templates == nil {
		p.Templates = map[string]*PlacedTemplate{}
	}
	if p.Templates[path] == nil {
		p.Templates[path] = &PlacedTemplate{}
	}
	return p.Templates[path]
}

func (t *PlacedTemplate) container(name string) *PlacedContainer {
	if t.Containers == nil {
		t.Containers = map[string]*PlacedContainer{}
	}
	if t.Containers[name] == nil {
		t.Containers[name] = &PlacedContainer{}
	}
	return t.Containers[name]
}

// lookup reads a possibly nil record.
func (p *Placed) lookup(path string) *PlacedTemplate {
	if p == nil || p.Templates[path] == nil {
		return &PlacedTemplate{}
	}
	return p.Templates[path]
}

func (t *PlacedTemplate) lookup(name string) *PlacedContainer {
	if t == nil || t.Containers[name] == nil {
		return &PlacedContainer{}
	}
	return t.Containers[name]
}

// add inserts v into the sorted set s.
func add(s *[]string, v string) {
	if i, found := slices.BinarySearch(*s, v); !found {
		*s = slices.Insert(*s, i, v)
	}
}

func has(s []string, v string) bool {
	_, found := slices.BinarySearch(s, v)
	return found
}

// tolerationKey names a toleration in the record: key:effect and a hash of the rest, so that a
// toleration the user wrote on the same key is told apart without copying its value.
func tolerationKey(t corev1.Toleration) string {
	secs := ""
	if t.TolerationSeconds != nil {
		secs = fmt.Sprint(*t.TolerationSeconds)
	}
	return fmt.Sprintf("%s:%s#%08x", t.Key, t.Effect, fnv32(string(t.Operator)+"|"+t.Value+"|"+secs))
}

// resourceKeys lists a container's resources as list/name.
func resourceKeys(rr corev1.ResourceRequirements) map[string]resourceAt {
	out := map[string]resourceAt{}
	for _, l := range []struct {
		name string
		rl   corev1.ResourceList
	}{{"limits", rr.Limits}, {"requests", rr.Requests}} {
		for r := range l.rl {
			out[l.name+"/"+string(r)] = resourceAt{list: l.rl, name: r}
		}
	}
	return out
}

type resourceAt struct {
	list corev1.ResourceList
	name corev1.ResourceName
}

func (r resourceAt) equal(o resourceAt) bool {
	a, ok1 := r.list[r.name]
	b, ok2 := o.list[o.name]
	return ok1 && ok2 && a.Cmp(b) == 0
}

func templatesByPath(w workload) map[string]*corev1.PodTemplateSpec {
	out := map[string]*corev1.PodTemplateSpec{}
	for _, t := range w.templates() {
		out[t.key()] = t.spec
	}
	return out
}

func containerNamed(cs []corev1.Container, name string) *corev1.Container {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

func envNamed(c *corev1.Container, name string) int {
	return slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
}

func mountAt(c *corev1.Container, path string) int {
	return slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == path })
}

func volumeIndex(ps *corev1.PodSpec, name string) int {
	return slices.IndexFunc(ps.Volumes, func(v corev1.Volume) bool { return v.Name == name })
}

func pullSecretIndex(ps *corev1.PodSpec, name string) int {
	return slices.IndexFunc(ps.ImagePullSecrets, func(r corev1.LocalObjectReference) bool { return r.Name == name })
}

func equalAt[T any](a []T, i int, b []T, j int) bool {
	return i >= 0 && j >= 0 && apiequality.Semantic.DeepEqual(a[i], b[j])
}
