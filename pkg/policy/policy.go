package policy

import (
	"path"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

// Mode says which objects are managed.
type Mode string

const (
	// OptIn manages objects that carry a Kaiwo annotation or the managed label.
	OptIn Mode = "OptIn"
	// Enforce also manages every object that requests GPUs.
	Enforce Mode = "Enforce"
)

// Lockable field names, as admins write them in spec.locked.
const (
	FieldQueue           = "queue"
	FieldGPUVendor       = "gpuVendor"
	FieldShmSize         = "shmSize"
	FieldTTL             = "ttlSecondsAfterFinished"
	FieldPriorityClass   = "priorityClass"
	FieldImagePullSecret = "imagePullSecret"
	FieldTolerations     = "tolerations"
	FieldNodeSelector    = "nodeSelector"
	FieldAffinity        = "affinity"
	// FieldQueueing locks how each kind is queued: Jobs and RayJobs in Kueue, serving kinds as
	// defaults.servingQueueing says; the kaiwo.silogen.ai/queueing annotation cannot change it.
	FieldQueueing = "queueing"
	FieldStorage  = "storage"
)

// LockableFields lists what spec.locked may name.
var LockableFields = []string{FieldAffinity, FieldGPUVendor, FieldImagePullSecret, FieldNodeSelector, FieldPriorityClass, FieldQueue, FieldQueueing, FieldShmSize, FieldStorage, FieldTolerations, FieldTTL}

// BuiltinName names the built-in default policy in records and messages.
const BuiltinName = "builtin-default"

// Policy is the compiled, effective policy for one namespace. It is immutable once built.
type Policy struct {
	// Name of the highest-priority KaiwoPolicy that selects the namespace, or BuiltinName.
	Name       string
	Generation int64
	// Sources are all KaiwoPolicies that contributed, highest priority first.
	Sources  []Source
	Mode     Mode
	Defaults Defaults
	Limits   Limits
	// Locked holds the names of defaults that user annotations cannot change.
	Locked []string
	// PodTemplatePatch is a strategic merge patch (JSON) applied to every managed pod template.
	// Where several policies bring a patch, it is their merge: applying it equals applying
	// each patch in turn, lowest priority first, so the higher priority wins.
	PodTemplatePatch []byte
	// LocalQueue is the LocalQueue a controller keeps in the namespace, or nil for none.
	LocalQueue *LocalQueue
	// Err is set when a KaiwoPolicy that selects the namespace is invalid. The mutation
	// denies managed objects with it (fail closed: the admin's limits are unknown);
	// objects that are not managed pass untouched.
	Err error
	// Warnings describe problems that were resolved fail-open, e.g. a gpusPerNodeFrom
	// whose ResourceFlavor is missing, or two policies of equal priority.
	Warnings []string
}

// LocalQueue is a Kueue LocalQueue to create in a namespace.
type LocalQueue struct {
	Name         string
	ClusterQueue string
}

// Source names one contributing KaiwoPolicy.
type Source struct {
	Name       string
	Generation int64
}

// Defaults apply where the user says nothing.
type Defaults struct {
	Queue string
	// ServingQueueing is "kueue" or "none" (the default): whether Deployments and RayServices are queued.
	ServingQueueing         string
	GPUVendor               string
	GPUsPerNode             int32
	CPUPerGPU               resource.Quantity
	MemoryPerGPU            resource.Quantity
	ShmSize                 *resource.Quantity
	TTLSecondsAfterFinished *int32
	PriorityClass           string
	ImagePullSecret         string
	Tolerations             []corev1.Toleration
	NodeSelector            map[string]string
	Affinity                *corev1.Affinity
	// StorageSize, when set, gives every managed workload's pods a volume at /workload of that size;
	// StorageClass is its class ("" for the cluster's default).
	StorageSize  *resource.Quantity
	StorageClass string
}

// Limits bound what a user may ask for. A nil list or a zero maximum means unbounded.
type Limits struct {
	MaxGPUsPerWorkload int32
	// MaxStoragePerWorkload bounds the workload volumes of all a workload's pods; nil is unbounded.
	MaxStoragePerWorkload *resource.Quantity
	AllowedVendors        []string
	AllowedQueues         []string
	// AllowedSecrets are path.Match patterns over Secret names; a name must match one pattern of every list.
	AllowedSecrets [][]string
}

// Default is the policy of a namespace that no KaiwoPolicy selects.
func Default() *Policy {
	return &Policy{
		Name: BuiltinName,
		Mode: OptIn,
		Defaults: Defaults{
			Queue:                   "kaiwo",
			GPUVendor:               "amd",
			GPUsPerNode:             8,
			CPUPerGPU:               Canonical(resource.MustParse("4")),
			MemoryPerGPU:            Canonical(resource.MustParse("32Gi")),
			TTLSecondsAfterFinished: ptr.To[int32](3600),
		},
	}
}

// IsLocked reports whether a user annotation may not change field.
func (p *Policy) IsLocked(field string) bool { return slices.Contains(p.Locked, field) }

// VendorAllowed reports whether vendor is within the limits.
func (l *Limits) VendorAllowed(vendor string) bool {
	return l.AllowedVendors == nil || slices.Contains(l.AllowedVendors, vendor)
}

// QueueAllowed reports whether queue is within the limits.
func (l *Limits) QueueAllowed(queue string) bool {
	return l.AllowedQueues == nil || slices.Contains(l.AllowedQueues, queue)
}

// SecretAllowed reports whether a Secret name matches the allowed patterns.
func (l *Limits) SecretAllowed(name string) bool {
	for _, patterns := range l.AllowedSecrets {
		if !slices.ContainsFunc(patterns, func(pattern string) bool {
			ok, err := path.Match(pattern, name)
			return err == nil && ok
		}) {
			return false
		}
	}
	return true
}
