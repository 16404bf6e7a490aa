package annotations

import (
	"slices"
	"strings"
)

// Prefix starts every Kaiwo key.
const Prefix = "kaiwo.silogen.ai/"

// User-facing annotations: what a workload author writes.
const (
	GPUs              = Prefix + "gpus"
	GPUVendor         = Prefix + "gpu-vendor"
	GPUsPerReplica    = Prefix + "gpus-per-replica"
	Replicas          = Prefix + "replicas"
	GPUModel          = Prefix + "gpu-model"
	Queue             = Prefix + "queue"
	PriorityClass     = Prefix + "priority-class"
	Queueing          = Prefix + "queueing"
	Env               = Prefix + "env"
	WorkloadConfigMap = Prefix + "workload-configmap"
	ImagePullSecret   = Prefix + "image-pull-secret"
	ShmSize           = Prefix + "shm-size"
	TTLSecondsAfter   = Prefix + "ttl-seconds-after-finished"
	Container         = Prefix + "container"
	// Storage is the size of a fresh volume at /workload in each pod of the workload.
	Storage = Prefix + "storage"
	// StorageClass is the StorageClass of that volume's claim.
	StorageClass = Prefix + "storage-class"
)

// Keys the webhook writes.
const (
	// Applied records which policy and which features were applied, and by name what Kaiwo placed.
	Applied = Prefix + "applied"
	// Managed is the label that marks a Kaiwo-managed object; users may set it to opt in.
	Managed = Prefix + "managed"
	// User is the label with the requesting user, made label-safe.
	User = Prefix + "user"
	// Team is the conventional namespace label that policies select on.
	Team = Prefix + "team"
)

// Kueue's own keys, written by the webhook.
const (
	KueueQueueName     = "kueue.x-k8s.io/queue-name"
	KueuePriorityClass = "kueue.x-k8s.io/priority-class"
	// KueuePodSuspendingParent and KueuePodGroupServing are the pod template annotations Kueue's
	// LeaderWorkerSet webhook sets on a queued LeaderWorkerSet: its pods are queued as serving pod groups.
	KueuePodSuspendingParent = "kueue.x-k8s.io/pod-suspending-parent"
	KueuePodGroupServing     = "kueue.x-k8s.io/pod-group-serving"
)

// Where says who writes a key and where it lives.
type Where string

const (
	UserAnnotation    Where = "user annotation"
	WrittenAnnotation Where = "written annotation"
	WrittenLabel      Where = "written label"
	OptInLabel        Where = "user or written label"
	NamespaceLabel    Where = "namespace label"
)

// Key documents one key.
type Key struct {
	Name  string
	Where Where
	// Value is the allowed value, as users read it.
	Value string
	Doc   string
}

// All lists every Kaiwo key; the README table is checked against it.
var All = []Key{
	{GPUs, UserAnnotation, "integer >= 0", "GPUs. Job, Deployment, CronJob, StatefulSet and Pod: per pod, at most a node's GPUs. RayJob, RayService, RayCluster, JobSet, PyTorchJob and TrainJob: total over all workers (PyTorchJob: the Master and Workers; TrainJob: `numNodes`), each worker at most a node. LeaderWorkerSet: per group of `size` pods, planned the same way"},
	{GPUVendor, UserAnnotation, "`amd` or `nvidia`", "resource name `amd.com/gpu` / `nvidia.com/gpu`; default from policy"},
	{GPUsPerReplica, UserAnnotation, "integer > 0", "Ray and JobSet: GPUs per worker (with `replicas`, overrides planning). Job, Deployment, CronJob, StatefulSet and Pod: `replicas` x `gpus-per-replica` are the pod's GPUs. At most a node's GPUs (policy `gpusPerNode`)"},
	{Replicas, UserAnnotation, "integer > 0", "Ray and JobSet: number of workers. Job, Deployment, CronJob, StatefulSet and Pod: multiplies `gpus-per-replica` into the pod's GPUs; with `gpus` as well they must agree"},
	{GPUModel, UserAnnotation, "label value, e.g. `MI300X`", "require nodes of that GPU model (node affinity on the vendor's product label)"},
	{Queue, UserAnnotation, "LocalQueue name", "becomes label `kueue.x-k8s.io/queue-name`; default from policy (`kaiwo`)"},
	{PriorityClass, UserAnnotation, "WorkloadPriorityClass", "becomes label `kueue.x-k8s.io/priority-class`"},
	{Queueing, UserAnnotation, "`kueue` or `none`", "default `kueue` for Job/RayJob/RayCluster/JobSet/PyTorchJob/TrainJob/CronJob/Pod, `none` for Deployment/StatefulSet/RayService/LeaderWorkerSet (`servingQueueing` of the policy); `none` is denied where the policy must queue the kind"},
	{Env, UserAnnotation, "YAML, the Kaiwo env-file format", "env vars, env from Secrets, Secret files"},
	{WorkloadConfigMap, UserAnnotation, "ConfigMap name", "code mounted at `/workload` (jobs) or `/workload/app` (services); at `/workload/mounted` with storage"},
	{ImagePullSecret, UserAnnotation, "Secret name", "added to `imagePullSecrets`"},
	{ShmSize, UserAnnotation, "quantity", "size of the memory-backed `/dev/shm`"},
	{TTLSecondsAfter, UserAnnotation, "integer >= 0", "Job, RayJob and JobSet TTL; default from policy (3600)"},
	{Container, UserAnnotation, "container name", "which container gets GPUs (default: the first app container)"},
	{Storage, UserAnnotation, "quantity, e.g. `100Gi`", "a fresh volume of that size at `/workload` in each pod (a generic ephemeral volume, created and deleted with the pod); the code ConfigMap moves to `/workload/mounted`, `HF_HOME` defaults to `/workload/.cache/huggingface`; default from policy `defaults.storage.size`"},
	{StorageClass, UserAnnotation, "StorageClass name", "class of that volume's claim; default from policy `defaults.storage.storageClassName`, else the cluster's default"},
	{Applied, WrittenAnnotation, "JSON", "which policy (name and generation) and features were applied, and by name what Kaiwo placed (`placed`: labels; per pod template volumes, tolerations, image pull secrets, the gpu-model node affinity; per container resources, env names, mount paths), at most 8 KiB, no values"},
	{Managed, OptInLabel, "`true`", "marks a Kaiwo-managed object; set it yourself to opt in without other annotations"},
	{User, WrittenLabel, "label value", "the user who created the object, made label-safe: always the requester on create, whatever the object says; cannot change or be removed later"},
	{Team, NamespaceLabel, "label value", "conventional namespace label for a KaiwoPolicy's namespaceSelector"},
}

// UserKeys are the annotations a workload author may write.
func UserKeys() []string {
	var keys []string
	for _, k := range All {
		if k.Where == UserAnnotation {
			keys = append(keys, k.Name)
		}
	}
	return keys
}

// IsKaiwo reports whether key is in the Kaiwo namespace.
func IsKaiwo(key string) bool { return strings.HasPrefix(key, Prefix) }

// Known reports whether key is an annotation the webhook reads or writes.
func Known(key string) bool {
	return slices.ContainsFunc(All, func(k Key) bool {
		return k.Name == key && (k.Where == UserAnnotation || k.Where == WrittenAnnotation)
	})
}
