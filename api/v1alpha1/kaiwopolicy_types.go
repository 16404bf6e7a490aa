package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// KaiwoPolicy sets the Kaiwo defaults, limits and locks for the namespaces its
// namespaceSelector selects. Where several policies select a namespace, they are
// merged field by field and the higher spec.priority wins (see docs/policy.md).
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=kpol,categories=kaiwo
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Priority",type=integer,JSONPath=`.spec.priority`
// +kubebuilder:printcolumn:name="Namespaces",type=integer,JSONPath=`.status.namespaces`
// +kubebuilder:printcolumn:name="Valid",type=string,JSONPath=`.status.conditions[?(@.type=="Valid")].status`
// +kubebuilder:printcolumn:name="Degraded",type=string,JSONPath=`.status.conditions[?(@.type=="Degraded")].status`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type KaiwoPolicy struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec KaiwoPolicySpec `json:"spec"`
	// +optional
	Status KaiwoPolicyStatus `json:"status,omitempty"`
}

// KaiwoPolicySpec is what an admin writes.
//
// +kubebuilder:validation:XValidation:rule="!has(self.locked) || self.locked.all(f, has(self.defaults) && (f == 'queue' ? has(self.defaults.queue) : f == 'gpuVendor' ? has(self.defaults.gpuVendor) : f == 'shmSize' ? has(self.defaults.shmSize) : f == 'ttlSecondsAfterFinished' ? has(self.defaults.ttlSecondsAfterFinished) : f == 'priorityClass' ? has(self.defaults.priorityClass) : f == 'imagePullSecret' ? has(self.defaults.imagePullSecret) : f == 'tolerations' ? has(self.defaults.tolerations) : f == 'nodeSelector' ? has(self.defaults.nodeSelector) : f == 'affinity' ? has(self.defaults.affinity) : f == 'storage' ? has(self.defaults.storage) : f == 'queueing'))",message="each locked field must be set in spec.defaults, the value it is locked to",fieldPath=".locked",reason=FieldValueInvalid
type KaiwoPolicySpec struct {
	// Priority orders the policies that select the same namespace: for each
	// default the highest priority that sets it wins. Two policies with equal
	// priority must not select the same namespace.
	// +optional
	// +kubebuilder:default=0
	Priority int32 `json:"priority,omitempty"`

	// NamespaceSelector selects the namespaces this policy applies to by their
	// labels. It is required; {} selects every namespace.
	// +required
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector"`

	// Mode says which objects are managed: OptIn manages objects that carry a
	// kaiwo.silogen.ai/ annotation or the kaiwo.silogen.ai/managed label;
	// Enforce also manages every object that requests GPUs.
	// +optional
	// +kubebuilder:default=OptIn
	Mode Mode `json:"mode,omitempty"`

	// Defaults apply where a workload's annotations say nothing.
	// +optional
	Defaults *PolicyDefaults `json:"defaults,omitempty"`

	// Limits bound what a workload may ask for.
	// +optional
	Limits *PolicyLimits `json:"limits,omitempty"`

	// Locked names defaults that user annotations cannot override; an attempt is
	// denied. Each locked field but queueing must be set in defaults.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	Locked []LockedField `json:"locked,omitempty"`

	// PodTemplatePatch is a strategic merge patch applied to every managed pod
	// template, after the webhook's own changes.
	// +optional
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	PodTemplatePatch *runtime.RawExtension `json:"podTemplatePatch,omitempty"`

	// LocalQueue says whether a Kueue LocalQueue, named by the default queue, is
	// created in each namespace this policy covers.
	// +optional
	LocalQueue *LocalQueuePolicy `json:"localQueue,omitempty"`
}

// Mode says which objects are managed.
// +kubebuilder:validation:Enum=OptIn;Enforce
type Mode string

const (
	// ModeOptIn manages objects that ask for it with a Kaiwo annotation or label.
	ModeOptIn Mode = "OptIn"
	// ModeEnforce also manages every object that requests GPUs.
	ModeEnforce Mode = "Enforce"
)

// GPUVendor names a GPU vendor; it selects the amd.com/gpu or nvidia.com/gpu resource.
// +kubebuilder:validation:Enum=amd;nvidia
type GPUVendor string

const (
	// VendorAMD requests amd.com/gpu.
	VendorAMD GPUVendor = "amd"
	// VendorNVIDIA requests nvidia.com/gpu.
	VendorNVIDIA GPUVendor = "nvidia"
)

// LockedField names a default that can be locked. The list matches
// pkg/policy.LockableFields; a test there keeps the two in step.
// +kubebuilder:validation:Enum=affinity;gpuVendor;imagePullSecret;nodeSelector;priorityClass;queue;queueing;shmSize;storage;tolerations;ttlSecondsAfterFinished
type LockedField string

// PolicyDefaults apply where a workload's annotations say nothing. An unset
// field falls back to a lower-priority policy, then to the built-in default.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.gpusPerNode) && has(self.gpusPerNodeFrom))",message="gpusPerNode and gpusPerNodeFrom are mutually exclusive"
type PolicyDefaults struct {
	// Queue is the Kueue LocalQueue workloads are submitted to (built-in: kaiwo).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Queue string `json:"queue,omitempty"`

	// GPUVendor picks amd.com/gpu or nvidia.com/gpu (built-in: amd).
	// +optional
	GPUVendor GPUVendor `json:"gpuVendor,omitempty"`

	// GPUsPerNode is the number of GPUs on one node; Ray workers are planned
	// from it (built-in: 8). Mutually exclusive with gpusPerNodeFrom.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1024
	GPUsPerNode *int32 `json:"gpusPerNode,omitempty"`

	// GPUsPerNodeFrom reads the GPUs per node from a node label of a Kueue
	// ResourceFlavor, as the Kaiwo CLI did. Mutually exclusive with gpusPerNode.
	// +optional
	GPUsPerNodeFrom *GPUsPerNodeSource `json:"gpusPerNodeFrom,omitempty"`

	// CPUPerGPU is the CPU request and limit per GPU (built-in: 4).
	// +optional
	CPUPerGPU *resource.Quantity `json:"cpuPerGpu,omitempty"`

	// MemoryPerGPU is the memory request and limit per GPU (built-in: 32Gi).
	// +optional
	MemoryPerGPU *resource.Quantity `json:"memoryPerGpu,omitempty"`

	// ShmSize is the size of the memory-backed /dev/shm (built-in: none).
	// +optional
	ShmSize *resource.Quantity `json:"shmSize,omitempty"`

	// TTLSecondsAfterFinished is set on Jobs (built-in: 3600).
	// +optional
	// +kubebuilder:validation:Minimum=0
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`

	// ServingQueueing says whether Deployments and RayServices are queued in Kueue (kueue) or
	// bypass the queue (none, the default), as `kaiwo serve` did.
	// +optional
	// +kubebuilder:validation:Enum=kueue;none
	ServingQueueing string `json:"servingQueueing,omitempty"`

	// PriorityClass is the Kueue WorkloadPriorityClass of queued workloads.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	PriorityClass string `json:"priorityClass,omitempty"`

	// ImagePullSecret is added to the pods' imagePullSecrets.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	ImagePullSecret string `json:"imagePullSecret,omitempty"`

	// Tolerations are added to GPU pods.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// NodeSelector is added to GPU pods.
	// +optional
	// +mapType=atomic
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// Affinity is added to GPU pods.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`

	// Storage gives each pod of a managed workload a fresh volume at /workload (a
	// generic ephemeral volume: Kubernetes creates its claim with the pod and
	// deletes it with the pod), as the Kaiwo CLI's --storage did. With a size,
	// every managed workload gets one; a storageClassName alone is the class of
	// those that ask with kaiwo.silogen.ai/storage.
	// +optional
	Storage *StorageDefaults `json:"storage,omitempty"`
}

// StorageDefaults are the size and class of the workload volume.
type StorageDefaults struct {
	// Size of each pod's volume, e.g. 100Gi.
	// +optional
	Size *resource.Quantity `json:"size,omitempty"`

	// StorageClassName of the claim; unset means the cluster's default StorageClass.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	StorageClassName string `json:"storageClassName,omitempty"`
}

// GPUsPerNodeSource points at the ResourceFlavor node label that holds the GPUs
// per node, e.g. {resourceFlavor: mi300x, nodeLabel: beta.amd.com/gpu.family.AI}.
type GPUsPerNodeSource struct {
	// ResourceFlavor is the name of the kueue.x-k8s.io ResourceFlavor.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	ResourceFlavor string `json:"resourceFlavor"`

	// NodeLabel is the key in the flavor's spec.nodeLabels whose value is the
	// number of GPUs per node.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=317
	NodeLabel string `json:"nodeLabel"`
}

// PolicyLimits bound what a workload may ask for. An unset field is unbounded.
type PolicyLimits struct {
	// MaxGPUsPerWorkload is the most GPUs one workload may request in total.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxGPUsPerWorkload *int32 `json:"maxGpusPerWorkload,omitempty"`

	// MaxStoragePerWorkload is the most workload-volume storage (kaiwo.silogen.ai/storage
	// or defaults.storage.size) one workload may ask for over all its pods.
	// +optional
	MaxStoragePerWorkload *resource.Quantity `json:"maxStoragePerWorkload,omitempty"`

	// AllowedVendors are the GPU vendors workloads may use.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	AllowedVendors []GPUVendor `json:"allowedVendors,omitempty"`

	// AllowedQueues are the LocalQueues workloads may name.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=63
	AllowedQueues []string `json:"allowedQueues,omitempty"`

	// AllowedSecrets are patterns (path.Match syntax: *, ?, [a-z]) of the Secret
	// names a workload's kaiwo.silogen.ai/env may read or mount.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	AllowedSecrets []string `json:"allowedSecrets,omitempty"`
}

// LocalQueuePolicy says whether the policy's LocalQueue is created in each
// namespace it covers. A controller creates it; the admission call never does.
type LocalQueuePolicy struct {
	// Create a LocalQueue named by the default queue when it is missing.
	// +optional
	Create bool `json:"create,omitempty"`

	// ClusterQueue the created LocalQueue points at.
	// +optional
	// +kubebuilder:default=kaiwo
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	ClusterQueue string `json:"clusterQueue,omitempty"`
}

// Condition types of KaiwoPolicyStatus.
const (
	// ConditionValid is False when the policy fails validation. The namespaces
	// it selects then deny Kaiwo-managed workloads (fail closed) until it is fixed.
	ConditionValid = "Valid"
	// ConditionDegraded is True when part of the policy could not be resolved
	// (e.g. gpusPerNodeFrom names a missing ResourceFlavor) and falls back to
	// lower-priority policies or the built-in defaults (fail open).
	ConditionDegraded = "Degraded"
)

// KaiwoPolicyStatus is what the webhook observed of the policy.
type KaiwoPolicyStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Valid, Degraded.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Namespaces is the number of namespaces the policy selects now.
	// +optional
	Namespaces int32 `json:"namespaces,omitempty"`

	// Warnings say what the webhook resolved fail-open or cannot check: an
	// unresolved gpusPerNodeFrom, a priority tie with another policy, a default
	// queue without a LocalQueue. At most 16, each cut to 1024 characters.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=1024
	Warnings []string `json:"warnings,omitempty"`
}

// Reasons of the Valid and Degraded conditions.
const (
	// ReasonValid: the policy passed validation.
	ReasonValid = "Valid"
	// ReasonInvalid: the policy failed validation; its namespaces deny managed workloads.
	ReasonInvalid = "Invalid"
	// ReasonResolved: every part of the policy applies as written.
	ReasonResolved = "Resolved"
	// ReasonFailOpen: part of the policy (gpusPerNodeFrom) could not be resolved and counts as unset.
	ReasonFailOpen = "FailOpen"
	// ReasonPriorityTie: another policy of the same priority selects one of its namespaces.
	ReasonPriorityTie = "PriorityTie"
)

// KaiwoPolicyList is a list of KaiwoPolicy.
//
// +kubebuilder:object:root=true
type KaiwoPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []KaiwoPolicy `json:"items"`
}
