package mutate

import (
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
)

// Names of the volumes the webhook adds.
const (
	codeVolume   = "kaiwo-workload"
	shmVolume    = "dshm"
	shmPath      = "/dev/shm"
	secretPrefix = "kaiwo-secret-"
)

// GPU product labels, by vendor, that kaiwo.silogen.ai/gpu-model selects on.
var productLabels = map[string]string{"amd": "amd.com/gpu.product-name", "nvidia": "nvidia.com/gpu.product"}

// gpuResources are every vendor's GPU resource names.
var gpuResources = []corev1.ResourceName{"amd.com/gpu", "nvidia.com/gpu"}

// appContainer finds the container that gets GPUs: the named one, else the first app container.
func appContainer(t template, name string) (*corev1.Container, *field.Path, *field.Error) {
	cs := t.spec.Spec.Containers
	if len(cs) == 0 {
		return nil, nil, field.Required(t.path.Child("spec", "containers"), "a pod template needs a container to place GPUs on")
	}
	if name == "" {
		return &cs[0], t.path.Child("spec", "containers").Index(0), nil
	}
	names := make([]string, 0, len(cs))
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i], t.path.Child("spec", "containers").Index(i), nil
		}
		names = append(names, cs[i].Name)
	}
	return nil, nil, field.NotFound(field.NewPath("metadata", "annotations").Key(annotations.Container),
		fmt.Sprintf("%s (app containers of %s: %s)", name, t.name(), strings.Join(names, ", ")))
}

// templateGPUs is what a template's containers already ask for, by resource.
func templateGPUs(t *corev1.PodTemplateSpec) (int64, corev1.ResourceName) {
	var n int64
	var res corev1.ResourceName
	for _, c := range t.Spec.Containers {
		for _, r := range gpuResources {
			if q, ok := gpuQuantity(c.Resources, r); ok && q > 0 {
				n += q
				res = r
			}
		}
	}
	return n, res
}

// gpuQuantity reads a GPU resource from limits, else requests.
func gpuQuantity(rr corev1.ResourceRequirements, r corev1.ResourceName) (int64, bool) {
	if q, ok := rr.Limits[r]; ok {
		return q.Value(), true
	}
	if q, ok := rr.Requests[r]; ok {
		return q.Value(), true
	}
	return 0, false
}

// setGPUs places n GPUs of res on c, with CPU and memory per GPU where c sets none, requests equal to limits.
// An existing different GPU request is a conflict, never overwritten.
func setGPUs(c *corev1.Container, p *field.Path, res corev1.ResourceName, n int64, cpuPer, memPer resource.Quantity) (bool, *field.Error) {
	for _, r := range gpuResources {
		want := int64(0)
		if r == res {
			want = n
		}
		for _, list := range []struct {
			name string
			rl   corev1.ResourceList
		}{{"limits", c.Resources.Limits}, {"requests", c.Resources.Requests}} {
			if q, ok := list.rl[r]; ok && q.Value() != want {
				return false, field.Invalid(p.Child("resources", list.name).Key(string(r)), q.String(),
					fmt.Sprintf("conflicts with the %d %s that Kaiwo places here; remove it or make the annotations agree", n, res))
			}
		}
	}
	if n == 0 {
		return false, nil
	}
	cpu, okCPU := mulChecked(cpuPer.MilliValue(), n)
	mem, okMem := mulChecked(memPer.Value(), n)
	if !okCPU || !okMem {
		return false, field.Invalid(annotationsPath.Key(annotations.GPUs), n,
			fmt.Sprintf("GPUs per pod times the policy's %s CPU and %s memory per GPU do not fit a Kubernetes quantity; ask for fewer GPUs", cpuPer.String(), memPer.String()))
	}
	changed := false
	changed = fillPair(&c.Resources, res, *resource.NewQuantity(n, resource.DecimalSI)) || changed
	changed = fillPair(&c.Resources, corev1.ResourceCPU, *resource.NewMilliQuantity(cpu, resource.DecimalSI)) || changed
	changed = fillPair(&c.Resources, corev1.ResourceMemory, *resource.NewQuantity(mem, memPer.Format)) || changed
	return changed, nil
}

// fillPair sets request and limit of r: both to v when neither is set, else the missing one to the other.
func fillPair(rr *corev1.ResourceRequirements, r corev1.ResourceName, v resource.Quantity) bool {
	if v.IsZero() {
		return false
	}
	req, hasReq := rr.Requests[r]
	lim, hasLim := rr.Limits[r]
	switch {
	case hasReq && hasLim:
		return false
	case hasReq:
		v = req
	case hasLim:
		v = lim
	}
	if rr.Requests == nil {
		rr.Requests = corev1.ResourceList{}
	}
	if rr.Limits == nil {
		rr.Limits = corev1.ResourceList{}
	}
	rr.Requests[r], rr.Limits[r] = v, v
	return true
}

// setEnv adds vars to c; an existing var of the same name must be the same.
func setEnv(c *corev1.Container, p *field.Path, vars []corev1.EnvVar, env *lookup[corev1.EnvVar]) (bool, *field.Error) {
	changed := false
	for _, v := range vars {
		i := env.find(c.Env, v.Name)
		if i < 0 {
			c.Env = append(c.Env, v)
			env.appended(c.Env)
			changed = true
			continue
		}
		if !apiequality.Semantic.DeepEqual(c.Env[i], v) {
			return false, field.Invalid(p.Child("env").Index(i), describeEnv(c.Env[i]),
				fmt.Sprintf("container %q already sets %s differently from what Kaiwo sets (%s); remove one of them", c.Name, v.Name, describeEnv(v)))
		}
	}
	return changed, nil
}

func describeEnv(e corev1.EnvVar) string {
	if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
		return fmt.Sprintf("%s from Secret %s key %s", e.Name, e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
	}
	if e.ValueFrom != nil {
		return e.Name + " from a reference"
	}
	return e.Name + "=" + e.Value
}

// addVolume adds v to the pod; an existing volume of the same name must be the same.
func addVolume(spec *corev1.PodSpec, p *field.Path, v corev1.Volume, vols *lookup[corev1.Volume]) (bool, *field.Error) {
	i := vols.find(spec.Volumes, v.Name)
	if i < 0 {
		spec.Volumes = append(spec.Volumes, v)
		vols.appended(spec.Volumes)
		return true, nil
	}
	if !sameVolume(spec.Volumes[i], v) {
		return false, field.Invalid(p.Child("spec", "volumes").Index(i).Child("name"), v.Name,
			"is a volume name Kaiwo uses for a different volume; rename your volume")
	}
	return false, nil
}

// sameVolume compares what Kaiwo sets, ignoring the defaultMode the API server fills in, so that an
// UPDATE of a stored object matches what Kaiwo added on CREATE.
func sameVolume(have, want corev1.Volume) bool {
	h := have.DeepCopy()
	if h.ConfigMap != nil && want.ConfigMap != nil && want.ConfigMap.DefaultMode == nil {
		h.ConfigMap.DefaultMode = nil
	}
	if h.Secret != nil && want.Secret != nil && want.Secret.DefaultMode == nil {
		h.Secret.DefaultMode = nil
	}
	return apiequality.Semantic.DeepEqual(*h, want)
}

// addMount mounts m into c; an existing mount at the same path must be the same.
func addMount(c *corev1.Container, p *field.Path, m corev1.VolumeMount, mounts *lookup[corev1.VolumeMount]) (bool, *field.Error) {
	i := mounts.find(c.VolumeMounts, m.MountPath)
	if i < 0 {
		c.VolumeMounts = append(c.VolumeMounts, m)
		mounts.appended(c.VolumeMounts)
		return true, nil
	}
	if !apiequality.Semantic.DeepEqual(c.VolumeMounts[i], m) {
		return false, field.Invalid(p.Child("volumeMounts").Index(i).Child("mountPath"), m.MountPath,
			fmt.Sprintf("container %q already mounts volume %q here; Kaiwo mounts volume %q at this path", c.Name, c.VolumeMounts[i].Name, m.Name))
	}
	return false, nil
}

// secretVolumeName is a stable, valid volume name for a Secret, unique per Secret: a name that had to
// change to be valid (a '.' in it, or too long) gets a hash of the Secret's name, so db.prod and db-prod
// do not share a volume. Names that are valid as they are keep the plain form.
func secretVolumeName(secret string) string {
	name := secretPrefix + strings.ReplaceAll(secret, ".", "-")
	if len(name) <= 63 && !strings.Contains(secret, ".") {
		return name
	}
	return truncHash(name, secret)
}

// addToleration adds t unless an equal one is there.
func addToleration(spec *corev1.PodSpec, t corev1.Toleration) bool {
	if slices.ContainsFunc(spec.Tolerations, func(e corev1.Toleration) bool { return apiequality.Semantic.DeepEqual(e, t) }) {
		return false
	}
	spec.Tolerations = append(spec.Tolerations, t)
	return true
}

// requireNodeLabel adds key In [value] to every required node selector term.
func requireNodeLabel(spec *corev1.PodSpec, key, value string) bool {
	req := corev1.NodeSelectorRequirement{Key: key, Operator: corev1.NodeSelectorOpIn, Values: []string{value}}
	if spec.Affinity == nil {
		spec.Affinity = &corev1.Affinity{}
	}
	if spec.Affinity.NodeAffinity == nil {
		spec.Affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	na := spec.Affinity.NodeAffinity
	if na.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		na.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{}
	}
	ns := na.RequiredDuringSchedulingIgnoredDuringExecution
	if len(ns.NodeSelectorTerms) == 0 {
		ns.NodeSelectorTerms = []corev1.NodeSelectorTerm{{}}
	}
	changed := false
	for i := range ns.NodeSelectorTerms {
		term := &ns.NodeSelectorTerms[i]
		if !slices.ContainsFunc(term.MatchExpressions, func(e corev1.NodeSelectorRequirement) bool {
			return apiequality.Semantic.DeepEqual(e, req)
		}) {
			term.MatchExpressions = append(term.MatchExpressions, req)
			changed = true
		}
	}
	return changed
}

// requestsGPUs reports whether any template asks for a GPU.
func requestsGPUs(ts []template) bool {
	return slices.ContainsFunc(ts, func(t template) bool {
		for _, r := range podGPUResources(&t.spec.Spec) {
			if n, err := podGPUs(&t.spec.Spec, t.path, r); n > 0 || err != nil {
				return true
			}
		}
		return false
	})
}

// truncHash shortens v to a valid 63-character name or label value that stays unique per of: its
// first 54 characters, without trailing separators, then '-' and a 32-bit hash of of.
func truncHash(v, of string) string {
	return fmt.Sprintf("%s-%08x", strings.TrimRight(v[:min(len(v), 54)], "-._"), fnv32(of))
}

func fnv32(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

// podPlan is the plan of a kind with one pod template and GPUs per pod.
func podPlan(t template, s *settings) (plan, field.ErrorList) {
	gpus, err := s.podGPUs()
	if err != nil {
		return plan{}, field.ErrorList{err}
	}
	if gpus == nil {
		n, _ := templateGPUs(t.spec)
		if n < 0 || n > math.MaxInt32 {
			return plan{}, field.ErrorList{field.Invalid(t.path.Child("spec", "containers"), n, "GPUs per pod must be from 0 to 2147483647")}
		}
		return plan{replicas: 1, perReplica: int32(n)}, nil
	}
	return plan{replicas: 1, perReplica: *gpus, target: &t}, nil
}
