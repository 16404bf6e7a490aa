// Package trainerapi holds the parts of the Kubeflow Trainer API (trainer.kubeflow.org/v1alpha1,
// github.com/kubeflow/trainer/v2 v2.2.0, pkg/apis/trainer/v1alpha1, Apache License 2.0) that the
// webhook reads and writes: the TrainJob and its spec, field for field with the same JSON names. The
// upstream package cannot be imported: its generated OpenAPI code names k8s.io/api types that the
// k8s.io/api version of this module no longer has. The TrainJob's status is not modelled; the
// webhook's patches diff the Go values, so fields not modelled here are left as they are.
package trainerapi

import (
	"encoding/json"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// SchemeGroupVersion is the TrainJob's group and version.
var SchemeGroupVersion = schema.GroupVersion{Group: "trainer.kubeflow.org", Version: "v1alpha1"}

// TrainJobKind is the Kind of a TrainJob.
const TrainJobKind = "TrainJob"

// TrainJob is upstream's TrainJob.
type TrainJob struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              TrainJobSpec `json:"spec,omitzero"`
}

// TrainJobSpec is upstream's TrainJobSpec.
type TrainJobSpec struct {
	RuntimeRef            RuntimeRef     `json:"runtimeRef,omitzero"`
	Initializer           *Initializer   `json:"initializer,omitempty"`
	Trainer               *Trainer       `json:"trainer,omitempty"`
	RuntimePatches        []RuntimePatch `json:"runtimePatches,omitempty"`
	Suspend               *bool          `json:"suspend,omitempty"`
	ActiveDeadlineSeconds int64          `json:"activeDeadlineSeconds,omitempty"`
	ManagedBy             *string        `json:"managedBy,omitempty"`
}

// RuntimeRef is upstream's RuntimeRef.
type RuntimeRef struct {
	Name     string  `json:"name,omitempty"`
	APIGroup *string `json:"apiGroup,omitempty"`
	Kind     *string `json:"kind,omitempty"`
}

// Initializer is upstream's Initializer.
type Initializer struct {
	Dataset *DatasetInitializer `json:"dataset,omitempty"`
	Model   *ModelInitializer   `json:"model,omitempty"`
}

// DatasetInitializer is upstream's DatasetInitializer.
type DatasetInitializer struct {
	StorageUri *string                      `json:"storageUri,omitempty"`
	Env        []corev1.EnvVar              `json:"env,omitempty"`
	SecretRef  *corev1.LocalObjectReference `json:"secretRef,omitempty"`
}

// ModelInitializer is upstream's ModelInitializer.
type ModelInitializer struct {
	StorageUri *string                      `json:"storageUri,omitempty"`
	Env        []corev1.EnvVar              `json:"env,omitempty"`
	SecretRef  *corev1.LocalObjectReference `json:"secretRef,omitempty"`
}

// Trainer is upstream's Trainer.
type Trainer struct {
	Image            *string                      `json:"image,omitempty"`
	Command          []string                     `json:"command,omitempty"`
	Args             []string                     `json:"args,omitempty"`
	Env              []corev1.EnvVar              `json:"env,omitempty"`
	NumNodes         *int32                       `json:"numNodes,omitempty"`
	ResourcesPerNode *corev1.ResourceRequirements `json:"resourcesPerNode,omitempty"`
	NumProcPerNode   *int32                       `json:"numProcPerNode,omitempty"`
}

// RuntimePatch is upstream's RuntimePatch.
type RuntimePatch struct {
	Manager             string                    `json:"manager,omitempty"`
	Time                *metav1.Time              `json:"time,omitempty"`
	TrainingRuntimeSpec *TrainingRuntimeSpecPatch `json:"trainingRuntimeSpec,omitempty"`
}

// TrainingRuntimeSpecPatch is upstream's TrainingRuntimeSpecPatch.
type TrainingRuntimeSpecPatch struct {
	Template *JobSetTemplatePatch `json:"template,omitempty"`
}

// JobSetTemplatePatch is upstream's JobSetTemplatePatch.
type JobSetTemplatePatch struct {
	Metadata *metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec     *JobSetSpecPatch   `json:"spec,omitempty"`
}

// JobSetSpecPatch is upstream's JobSetSpecPatch.
type JobSetSpecPatch struct {
	ReplicatedJobs []ReplicatedJobPatch `json:"replicatedJobs,omitempty"`
}

// ReplicatedJobPatch is upstream's ReplicatedJobPatch.
type ReplicatedJobPatch struct {
	Name     string            `json:"name,omitempty"`
	Template *JobTemplatePatch `json:"template,omitempty"`
}

// JobTemplatePatch is upstream's JobTemplatePatch.
type JobTemplatePatch struct {
	Metadata *metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec     *JobSpecPatch      `json:"spec,omitempty"`
}

// JobSpecPatch is upstream's JobSpecPatch.
type JobSpecPatch struct {
	Template *PodTemplatePatch `json:"template,omitempty"`
}

// PodTemplatePatch is upstream's PodTemplatePatch.
type PodTemplatePatch struct {
	Metadata *metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec     *PodSpecPatch      `json:"spec,omitempty"`
}

// PodSpecPatch is upstream's PodSpecPatch.
type PodSpecPatch struct {
	ServiceAccountName *string                       `json:"serviceAccountName,omitempty"`
	Volumes            []corev1.Volume               `json:"volumes,omitempty"`
	InitContainers     []ContainerPatch              `json:"initContainers,omitempty"`
	Containers         []ContainerPatch              `json:"containers,omitempty"`
	ImagePullSecrets   []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`
	SecurityContext    *corev1.PodSecurityContext    `json:"securityContext,omitempty"`
	NodeSelector       map[string]string             `json:"nodeSelector,omitempty"`
	Affinity           *corev1.Affinity              `json:"affinity,omitempty"`
	Tolerations        []corev1.Toleration           `json:"tolerations,omitempty"`
	SchedulingGates    []corev1.PodSchedulingGate    `json:"schedulingGates,omitempty"`
}

// ContainerPatch is upstream's ContainerPatch.
type ContainerPatch struct {
	Name            string                  `json:"name,omitempty"`
	Env             []corev1.EnvVar         `json:"env,omitempty"`
	VolumeMounts    []corev1.VolumeMount    `json:"volumeMounts,omitempty"`
	SecurityContext *corev1.SecurityContext `json:"securityContext,omitempty"`
}

// DeepCopyObject copies the TrainJob through its JSON encoding, which every field round-trips.
func (t *TrainJob) DeepCopyObject() runtime.Object { return t.DeepCopy() }

// DeepCopy copies the TrainJob.
func (t *TrainJob) DeepCopy() *TrainJob {
	if t == nil {
		return nil
	}
	b, err := json.Marshal(t)
	if err != nil {
		panic(err) // plain data: it always encodes
	}
	out := &TrainJob{}
	if err := json.Unmarshal(b, out); err != nil {
		panic(err)
	}
	return out
}
