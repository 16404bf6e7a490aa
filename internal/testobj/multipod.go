package testobj

import (
	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	jobsetv1alpha2 "sigs.k8s.io/jobset/api/jobset/v1alpha2"
)

// RayClusterWrapper builds a ray.io/v1 RayCluster.
type RayClusterWrapper struct{ rayv1.RayCluster }

// MakeRayCluster is a RayCluster with a head and the named worker groups, one worker each.
func MakeRayCluster(name, ns string, workerGroups ...string) *RayClusterWrapper {
	return &RayClusterWrapper{rayv1.RayCluster{
		TypeMeta:   metav1.TypeMeta{APIVersion: "ray.io/v1", Kind: "RayCluster"},
		ObjectMeta: meta(name, ns),
		Spec:       rayCluster(workerGroups...),
	}}
}

func (w *RayClusterWrapper) Annotate(k, v string) *RayClusterWrapper {
	annotate(&w.ObjectMeta, k, v)
	return w
}

// Workers sets the replicas of worker group g and request = limit = q of r on its first container.
func (w *RayClusterWrapper) Workers(g int, replicas int32, r corev1.ResourceName, q string) *RayClusterWrapper {
	w.Spec.WorkerGroupSpecs[g].Replicas = ptr.To(replicas)
	Resources(&w.Spec.WorkerGroupSpecs[g].Template, 0, r, q)
	return w
}

func (w *RayClusterWrapper) Autoscaling(on bool) *RayClusterWrapper {
	w.Spec.EnableInTreeAutoscaling = ptr.To(on)
	return w
}

// OwnedBy makes the object controlled by an owner of apiVersion and kind.
func (w *RayClusterWrapper) OwnedBy(apiVersion, kind string) *RayClusterWrapper {
	w.OwnerReferences = controller(apiVersion, kind)
	return w
}

func (w *RayClusterWrapper) Obj() *rayv1.RayCluster { return w.RayCluster.DeepCopy() }

func controller(apiVersion, kind string) []metav1.OwnerReference {
	return []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: "owner", UID: "owner-uid", Controller: ptr.To(true)}}
}

// JobSetWrapper builds a jobset.x-k8s.io/v1alpha2 JobSet.
type JobSetWrapper struct{ jobsetv1alpha2.JobSet }

// MakeJobSet is a JobSet with the named replicated jobs, each one Job (replicas unset) of one pod of one
// container "main".
func MakeJobSet(name, ns string, replicatedJobs ...string) *JobSetWrapper {
	js := jobsetv1alpha2.JobSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "jobset.x-k8s.io/v1alpha2", Kind: "JobSet"},
		ObjectMeta: meta(name, ns),
	}
	for _, n := range replicatedJobs {
		js.Spec.ReplicatedJobs = append(js.Spec.ReplicatedJobs, jobsetv1alpha2.ReplicatedJob{Name: n,
			Template: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: template("main")}}})
	}
	return &JobSetWrapper{js}
}

func (w *JobSetWrapper) Annotate(k, v string) *JobSetWrapper { annotate(&w.ObjectMeta, k, v); return w }

// Shape sets replicas of replicated job i and the parallelism and completions of its Jobs (0: unset).
func (w *JobSetWrapper) Shape(i int, replicas, parallelism, completions int32) *JobSetWrapper {
	rj := &w.Spec.ReplicatedJobs[i]
	rj.Replicas = replicas
	rj.Template.Spec.Parallelism, rj.Template.Spec.Completions = nil, nil
	if parallelism != 0 {
		rj.Template.Spec.Parallelism = ptr.To(parallelism)
	}
	if completions != 0 {
		rj.Template.Spec.Completions = ptr.To(completions)
	}
	return w
}

// Resource sets request = limit = q of r on the first container of replicated job i.
func (w *JobSetWrapper) Resource(i int, r corev1.ResourceName, q string) *JobSetWrapper {
	Resources(&w.Spec.ReplicatedJobs[i].Template.Spec.Template, 0, r, q)
	return w
}

func (w *JobSetWrapper) Obj() *jobsetv1alpha2.JobSet { return w.JobSet.DeepCopy() }

// MakeJobSetJob is the Job a JobSet's controller creates for replicated job template t: controlled by the JobSet.
func MakeJobSetJob(name, ns string, spec batchv1.JobSpec) *batchv1.Job {
	return &batchv1.Job{
		TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
			OwnerReferences: controller("jobset.x-k8s.io/v1alpha2", "JobSet")},
		Spec: spec,
	}
}
