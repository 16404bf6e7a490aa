package policy

import (
	"fmt"
	"slices"
	"strconv"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/silogen/kaiwo-webhook/api/v1alpha1"
)

// FlavorLookup returns the spec.nodeLabels of the Kueue ResourceFlavor name and
// whether that flavor exists. A nil FlavorLookup knows no flavors.
type FlavorLookup func(name string) (nodeLabels map[string]string, found bool)

// Flavors maps Kueue ResourceFlavor names to their spec.nodeLabels.
type Flavors map[string]map[string]string

// Lookup is f as a FlavorLookup.
func (f Flavors) Lookup(name string) (map[string]string, bool) {
	l, ok := f[name]
	return l, ok
}

// defaultClusterQueue is the ClusterQueue of a created LocalQueue when the policy
// names none (the CRD defaults it too; offline YAML is not defaulted).
const defaultClusterQueue = "kaiwo"

// fieldSet records which defaults a policy sets, so that policies merge field by field.
type fieldSet uint16

const (
	setQueue fieldSet = 1 << iota
	setGPUVendor
	setGPUsPerNode
	setCPUPerGPU
	setMemoryPerGPU
	setShmSize
	setTTL
	setPriorityClass
	setImagePullSecret
	setTolerations
	setNodeSelector
	setAffinity
	setServingQueueing
	setStorage
)

// Compiled is one KaiwoPolicy made ready to resolve: its selector parsed, its
// gpusPerNodeFrom read from the ResourceFlavor, its patch validated, and a record
// of which defaults it sets. It is immutable once built.
type Compiled struct {
	Name       string
	Generation int64
	Priority   int32
	// Selector is labels.Nothing() when the namespaceSelector is missing or invalid:
	// a policy whose namespaces cannot be known applies to none (fail open).
	Selector labels.Selector
	// Errors are the validation errors of the policy. Each namespace it selects
	// gets Policy.Err (fail closed) until it is fixed.
	Errors field.ErrorList
	// Warnings are parts resolved fail-open, e.g. an unresolvable gpusPerNodeFrom,
	// which then counts as unset.
	Warnings []string

	mode       Mode
	set        fieldSet
	defaults   Defaults
	maxGPUs    int32
	maxStorage *resource.Quantity
	vendors    []string
	queues     []string
	secrets    []string
	locked     []string
	patch      []byte
	localQueue *v1alpha1.LocalQueuePolicy
	// flavor is the ResourceFlavor gpusPerNodeFrom reads, so that a flavor change
	// recompiles only the policies that read one.
	flavor string
}

// Compile validates p and compiles it. It always returns a Compiled, even when p
// is invalid (as pod-security-admission's PolicyToEvaluate does): the errors are
// also in Compiled.Errors, and resolution fails the selected namespaces closed.
//
// gpusPerNodeFrom is resolved by reading spec.nodeLabels[nodeLabel] of the named
// Kueue ResourceFlavor as a positive integer, as the Kaiwo CLI did. A missing
// flavor, a missing label or a value that is not a positive integer is not an
// error of the policy (the flavor may be created later): it becomes a warning
// and the field counts as unset, so a lower-priority policy or the built-in 8
// applies (fail open; GPUs per node only shapes Ray worker planning).
func Compile(p *v1alpha1.KaiwoPolicy, flavors FlavorLookup) (*Compiled, field.ErrorList) {
	errs := Validate(p)
	c := &Compiled{
		Name:       p.Name,
		Generation: p.Generation,
		Priority:   p.Spec.Priority,
		Selector:   labels.Nothing(),
		Errors:     errs,
		mode:       OptIn,
	}
	if sel := p.Spec.NamespaceSelector; sel != nil {
		if s, err := metav1.LabelSelectorAsSelector(sel); err == nil {
			c.Selector = s
		}
	}
	if p.Spec.Mode == v1alpha1.ModeEnforce {
		c.mode = Enforce
	}
	if d := p.Spec.Defaults.DeepCopy(); d != nil {
		c.compileDefaults(d, flavors)
	}
	if l := p.Spec.Limits; l != nil {
		if l.MaxGPUsPerWorkload != nil {
			c.maxGPUs = *l.MaxGPUsPerWorkload
		}
		if l.MaxStoragePerWorkload != nil {
			q := l.MaxStoragePerWorkload.DeepCopy()
			c.maxStorage = &q
		}
		if l.AllowedVendors != nil {
			c.vendors = make([]string, 0, len(l.AllowedVendors))
			for _, v := range l.AllowedVendors {
				c.vendors = append(c.vendors, string(v))
			}
		}
		c.queues = slices.Clone(l.AllowedQueues)
		c.secrets = slices.Clone(l.AllowedSecrets)
	}
	for _, f := range p.Spec.Locked {
		c.locked = append(c.locked, string(f))
	}
	if raw := patchJSON(p.Spec.PodTemplatePatch); raw != nil && !hasErrorUnder(errs, patchPath) {
		c.patch = raw
	}
	if lq := p.Spec.LocalQueue; lq != nil {
		c.localQueue = lq.DeepCopy()
	}
	return c, errs
}

func (c *Compiled) compileDefaults(d *v1alpha1.PolicyDefaults, flavors FlavorLookup) {
	if d.Queue != "" {
		c.set |= setQueue
		c.defaults.Queue = d.Queue
	}
	if d.GPUVendor != "" {
		c.set |= setGPUVendor
		c.defaults.GPUVendor = string(d.GPUVendor)
	}
	switch {
	case d.GPUsPerNode != nil:
		c.set |= setGPUsPerNode
		c.defaults.GPUsPerNode = *d.GPUsPerNode
	case d.GPUsPerNodeFrom != nil:
		c.flavor = d.GPUsPerNodeFrom.ResourceFlavor
		if n, warning := gpusPerNodeFrom(d.GPUsPerNodeFrom, flavors); warning != "" {
			c.Warnings = append(c.Warnings, warning)
		} else {
			c.set |= setGPUsPerNode
			c.defaults.GPUsPerNode = n
		}
	}
	if d.CPUPerGPU != nil {
		c.set |= setCPUPerGPU
		c.defaults.CPUPerGPU = Canonical(*d.CPUPerGPU)
	}
	if d.MemoryPerGPU != nil {
		c.set |= setMemoryPerGPU
		c.defaults.MemoryPerGPU = Canonical(*d.MemoryPerGPU)
	}
	if d.ShmSize != nil {
		c.set |= setShmSize
		q := Canonical(*d.ShmSize)
		c.defaults.ShmSize = &q
	}
	if d.TTLSecondsAfterFinished != nil {
		c.set |= setTTL
		c.defaults.TTLSecondsAfterFinished = d.TTLSecondsAfterFinished
	}
	if d.PriorityClass != "" {
		c.set |= setPriorityClass
		c.defaults.PriorityClass = d.PriorityClass
	}
	if d.ServingQueueing != "" {
		c.set |= setServingQueueing
		c.defaults.ServingQueueing = d.ServingQueueing
	}
	if d.ImagePullSecret != "" {
		c.set |= setImagePullSecret
		c.defaults.ImagePullSecret = d.ImagePullSecret
	}
	if d.Tolerations != nil {
		c.set |= setTolerations
		c.defaults.Tolerations = d.Tolerations
	}
	if d.NodeSelector != nil {
		c.set |= setNodeSelector
		c.defaults.NodeSelector = d.NodeSelector
	}
	if st := d.Storage; st != nil {
		c.set |= setStorage
		c.defaults.StorageSize, c.defaults.StorageClass = st.Size, st.StorageClassName
	}
	if d.Affinity != nil {
		c.set |= setAffinity
		c.defaults.Affinity = d.Affinity
	}
}

// gpusPerNodeFrom reads the GPUs per node from a ResourceFlavor node label, or
// says in a warning why it cannot.
func gpusPerNodeFrom(from *v1alpha1.GPUsPerNodeSource, flavors FlavorLookup) (int32, string) {
	const fallback = "; GPUs per node fall back to a lower-priority policy or the built-in 8"
	path := field.NewPath("spec", "defaults", "gpusPerNodeFrom")
	var nodeLabels map[string]string
	found := false
	if flavors != nil {
		nodeLabels, found = flavors(from.ResourceFlavor)
	}
	if !found {
		return 0, fmt.Sprintf("%s: ResourceFlavor %q not found%s", path.Child("resourceFlavor"), from.ResourceFlavor, fallback)
	}
	v, ok := nodeLabels[from.NodeLabel]
	if !ok {
		return 0, fmt.Sprintf("%s: ResourceFlavor %q has no node label %q%s", path.Child("nodeLabel"), from.ResourceFlavor, from.NodeLabel, fallback)
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || n <= 0 {
		return 0, fmt.Sprintf("%s: node label %q of ResourceFlavor %q is %q, must be a positive integer%s", path.Child("nodeLabel"), from.NodeLabel, from.ResourceFlavor, v, fallback)
	}
	return int32(n), ""
}

// Policy is the effective policy of a namespace that only c selects.
func (c *Compiled) Policy() *Policy { return merge([]*Compiled{c}) }

// Degraded reports whether part of the policy was resolved fail-open.
func (c *Compiled) Degraded() bool { return len(c.Warnings) > 0 }

// Canonical returns a copy of q whose canonical string is computed. A Quantity computes that string on
// its first String() and stores it in itself; a compiled policy is shared by concurrent requests, so its
// quantities must have it before they are shared, and String() then only reads.
func Canonical(q resource.Quantity) resource.Quantity {
	q = q.DeepCopy()
	_ = q.String()
	return q
}
