package mutate

import (
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"

	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// gpuDomains are the resource domains of the vendors' device plugins.
var gpuDomains = map[string]string{"amd.com": "amd", "nvidia.com": "nvidia"}

// gpuVendorOf reports whether r is a GPU resource and of which vendor: a resource of a vendor's domain
// named gpu... or mig-..., so that amd.com/gpu, nvidia.com/gpu, nvidia.com/gpu.shared (time-slicing) and
// nvidia.com/mig-1g.10gb (MIG) all count; nvidia.com/rdma_shared_device_a (a NIC) does not.
func gpuVendorOf(r corev1.ResourceName) (string, bool) {
	domain, name, ok := strings.Cut(string(r), "/")
	vendor, known := gpuDomains[domain]
	return vendor, ok && known && (strings.HasPrefix(name, "gpu") || strings.HasPrefix(name, "mig-"))
}

// podGPUResources lists the GPU resources any container of spec asks for, sorted.
func podGPUResources(spec *corev1.PodSpec) []corev1.ResourceName {
	var out []corev1.ResourceName
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range cs {
			for _, r := range containerGPUResources(&cs[i]) {
				if !slices.Contains(out, r) {
					out = append(out, r)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// containerGPUResources lists the GPU resources of c's limits and requests, sorted.
func containerGPUResources(c *corev1.Container) []corev1.ResourceName {
	var out []corev1.ResourceName
	for _, rl := range []corev1.ResourceList{c.Resources.Limits, c.Resources.Requests} {
		for r := range rl {
			if _, ok := gpuVendorOf(r); ok && !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	if len(out) > 1 {
		slices.Sort(out)
	}
	return out
}

// pods is how many pods of one template run at once at most, and the fields that say so, for messages.
type pods struct {
	n   int64
	why string
}

// mulChecked multiplies non-negative a and b; ok is false when the product does not fit an int64.
func mulChecked(a, b int64) (int64, bool) {
	if a == 0 || b == 0 {
		return 0, true
	}
	if a < 0 || b < 0 || a > math.MaxInt64/b {
		return 0, false
	}
	return a * b, true
}

// addChecked adds non-negative a and b; ok is false when the sum does not fit an int64.
func addChecked(a, b int64) (int64, bool) {
	if a < 0 || b < 0 || a > math.MaxInt64-b {
		return 0, false
	}
	return a + b, true
}

// podGPUs is what the scheduler reserves of resource r for one pod of spec, by Kubernetes' effective-request
// rule: the regular containers plus the native sidecars (init containers with restartPolicy Always), against
// the largest init container plus the sidecars started before it. A quantity that is not a whole number
// that fits an int64, or a sum that does not fit, is an error naming the field.
func podGPUs(spec *corev1.PodSpec, p *field.Path, r corev1.ResourceName) (int64, *field.Error) {
	var sidecars, initMax, regular int64
	var ok bool
	for i, c := range spec.InitContainers {
		n, err := containerGPUs(c.Resources, p.Child("initContainers").Index(i), r)
		if err != nil {
			return 0, err
		}
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			if sidecars, ok = addChecked(sidecars, n); !ok {
				return 0, tooLarge(p.Child("initContainers").Index(i).Child("resources"), r)
			}
			continue
		}
		e, ok := addChecked(sidecars, n)
		if !ok {
			return 0, tooLarge(p.Child("initContainers").Index(i).Child("resources"), r)
		}
		initMax = max(initMax, e)
	}
	for i, c := range spec.Containers {
		n, err := containerGPUs(c.Resources, p.Child("containers").Index(i), r)
		if err != nil {
			return 0, err
		}
		if regular, ok = addChecked(regular, n); !ok {
			return 0, tooLarge(p.Child("containers").Index(i).Child("resources"), r)
		}
	}
	total, ok := addChecked(regular, sidecars)
	if !ok {
		return 0, tooLarge(p.Child("containers"), r)
	}
	return max(total, initMax), nil
}

// containerGPUs reads resource r of one container: the limit, else the request (the API server requires
// them equal for extended resources). It must be a whole number that fits an int64.
func containerGPUs(rr corev1.ResourceRequirements, p *field.Path, r corev1.ResourceName) (int64, *field.Error) {
	for _, l := range []struct {
		name string
		rl   corev1.ResourceList
	}{{"limits", rr.Limits}, {"requests", rr.Requests}} {
		q, ok := l.rl[r]
		if !ok {
			continue
		}
		n, fits := wholeInt64(q)
		if !fits || n < 0 {
			return 0, field.Invalid(p.Child("resources", l.name).Key(string(r)), q.String(), "must be a whole number of GPUs from 0 to 9223372036854775807")
		}
		return n, nil
	}
	return 0, nil
}

// wholeInt64 is q as an int64 when q is a whole number that fits one.
func wholeInt64(q resource.Quantity) (int64, bool) {
	if n, ok := q.AsInt64(); ok {
		return n, true
	}
	r, ok := new(big.Rat).SetString(q.AsDec().String())
	if !ok || !r.IsInt() || !r.Num().IsInt64() {
		return 0, false
	}
	return r.Num().Int64(), true
}

func tooLarge(p *field.Path, r corev1.ResourceName) *field.Error {
	return field.Invalid(p, string(r), "the GPUs of this pod add up to more than 9223372036854775807")
}

// count is what a workload asks the scheduler for: GPUs by resource over every template, pods x GPUs.
type count struct {
	total int64
	// byResource holds the total of each GPU resource.
	byResource map[corev1.ResourceName]int64
	// parts says, per template with GPUs, pods x GPUs, for messages.
	parts []string
}

// countGPUs counts the GPUs of every template of w, each pod by the effective-request rule, times the
// pods of that template. A number that does not fit is an error naming the field.
func countGPUs(w podSource) (count, *field.Error) {
	c := count{byResource: map[corev1.ResourceName]int64{}}
	ts, ns := w.templates(), w.pods()
	for i, t := range ts {
		for _, r := range podGPUResources(&t.spec.Spec) {
			per, err := podGPUs(&t.spec.Spec, t.path.Child("spec"), r)
			if err != nil {
				return count{}, err
			}
			if per == 0 || ns[i].n == 0 {
				continue
			}
			n, ok := mulChecked(per, ns[i].n)
			if !ok {
				return count{}, field.Invalid(t.at(), fmt.Sprintf("%d pods x %d %s", ns[i].n, per, r), "the workload's GPUs do not fit a 64-bit count ("+ns[i].why+")")
			}
			if c.byResource[r], ok = addChecked(c.byResource[r], n); !ok {
				return count{}, field.Invalid(t.at(), fmt.Sprintf("%d pods x %d %s", ns[i].n, per, r), "the workload's GPUs do not fit a 64-bit count")
			}
			if c.total, ok = addChecked(c.total, n); !ok {
				return count{}, field.Invalid(t.at(), fmt.Sprintf("%d pods x %d %s", ns[i].n, per, r), "the workload's GPUs do not fit a 64-bit count")
			}
			c.parts = append(c.parts, fmt.Sprintf("%s: %d pods (%s) x %d %s", t.name(), ns[i].n, ns[i].why, per, r))
		}
	}
	return c, nil
}

// describe lists the parts of the count.
func (c count) describe() string { return strings.Join(c.parts, "; ") }

// onePod is a template of which one pod runs.
func onePod() pods { return pods{1, "one pod"} }

// rayPods is the most pods of the cluster's templates: the head, and per worker group its replicas, or
// minReplicas when larger, or maxReplicas when the in-tree autoscaler may scale up to it (KubeRay defaults
// it to 2147483647), each times numOfHosts.
func rayPods(c *rayv1.RayClusterSpec, clusterPath *field.Path) []pods {
	if c == nil {
		return nil
	}
	out := []pods{onePod()}
	autoscaling := ptr.Deref(c.EnableInTreeAutoscaling, false)
	for i, g := range c.WorkerGroupSpecs {
		gp := clusterPath.Child("workerGroupSpecs").Index(i)
		n := int64(ptr.Deref(g.Replicas, 0))
		why := fmt.Sprintf("%s=%d", gp.Child("replicas"), n)
		if m := int64(ptr.Deref(g.MinReplicas, 0)); m > n {
			n, why = m, fmt.Sprintf("%s=%d", gp.Child("minReplicas"), m)
		}
		if autoscaling {
			m := int64(ptr.Deref(g.MaxReplicas, math.MaxInt32))
			if m > n {
				n, why = m, fmt.Sprintf("%s=%d with enableInTreeAutoscaling", gp.Child("maxReplicas"), m)
			}
		}
		if h := int64(g.NumOfHosts); h > 1 {
			n *= h // both fit an int32
			why += fmt.Sprintf(" x %s=%d", gp.Child("numOfHosts"), h)
		}
		out = append(out, pods{max(n, 0), why})
	}
	return out
}
