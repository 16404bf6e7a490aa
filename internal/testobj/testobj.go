package testobj

import (
	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func meta(name, ns string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: ns} }

func template(containers ...string) corev1.PodTemplateSpec {
	t := corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever}}
	for _, c := range containers {
		t.Spec.Containers = append(t.Spec.Containers, corev1.Container{Name: c, Image: "busybox"})
	}
	return t
}

func annotate(m *metav1.ObjectMeta, k, v string) {
	if m.Annotations == nil {
		m.Annotations = map[string]string{}
	}
	m.Annotations[k] = v
}

func label(m *metav1.ObjectMeta, k, v string) {
	if m.Labels == nil {
		m.Labels = map[string]string{}
	}
	m.Labels[k] = v
}

// Resources sets request = limit = q on container c of t.
func Resources(t *corev1.PodTemplateSpec, c int, r corev1.ResourceName, q string) {
	rr := &t.Spec.Containers[c].Resources
	if rr.Requests == nil {
		rr.Requests = corev1.ResourceList{}
	}
	if rr.Limits == nil {
		rr.Limits = corev1.ResourceList{}
	}
	rr.Requests[r], rr.Limits[r] = resource.MustParse(q), resource.MustParse(q)
}

// JobWrapper builds a batch/v1 Job.
type JobWrapper struct{ batchv1.Job }

// MakeJob is a Job with one container "main".
func MakeJob(name, ns string) *JobWrapper {
	return &JobWrapper{batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: meta(name, ns),
		Spec:       batchv1.JobSpec{Template: template("main")},
	}}
}

func (w *JobWrapper) Annotate(k, v string) *JobWrapper { annotate(&w.ObjectMeta, k, v); return w }
func (w *JobWrapper) Label(k, v string) *JobWrapper    { label(&w.ObjectMeta, k, v); return w }

// Container appends an app container.
func (w *JobWrapper) Container(name string) *JobWrapper {
	w.Spec.Template.Spec.Containers = append(w.Spec.Template.Spec.Containers, corev1.Container{Name: name, Image: "busybox"})
	return w
}

// InitContainer appends an init container; sidecar makes it a native sidecar (restartPolicy Always).
func (w *JobWrapper) InitContainer(name string, sidecar bool) *JobWrapper {
	c := corev1.Container{Name: name, Image: "busybox"}
	if sidecar {
		c.RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
	}
	w.Spec.Template.Spec.InitContainers = append(w.Spec.Template.Spec.InitContainers, c)
	return w
}

// Resource sets request = limit on app container c.
func (w *JobWrapper) Resource(c int, r corev1.ResourceName, q string) *JobWrapper {
	Resources(&w.Spec.Template, c, r, q)
	return w
}

// Env appends an env var to app container c.
func (w *JobWrapper) Env(c int, name, value string) *JobWrapper {
	cs := w.Spec.Template.Spec.Containers
	cs[c].Env = append(cs[c].Env, corev1.EnvVar{Name: name, Value: value})
	return w
}

// Mount adds a volume of an emptyDir mounted at path into app container c.
func (w *JobWrapper) Mount(c int, volume, path string) *JobWrapper {
	ps := &w.Spec.Template.Spec
	ps.Volumes = append(ps.Volumes, corev1.Volume{Name: volume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	ps.Containers[c].VolumeMounts = append(ps.Containers[c].VolumeMounts, corev1.VolumeMount{Name: volume, MountPath: path})
	return w
}

func (w *JobWrapper) Parallelism(n int32) *JobWrapper { w.Spec.Parallelism = ptr.To(n); return w }
func (w *JobWrapper) TTL(n int32) *JobWrapper         { w.Spec.TTLSecondsAfterFinished = ptr.To(n); return w }
func (w *JobWrapper) Obj() *batchv1.Job               { return w.Job.DeepCopy() }

// DeploymentWrapper builds an apps/v1 Deployment.
type DeploymentWrapper struct{ appsv1.Deployment }

// MakeDeployment is a Deployment with one container "server".
func MakeDeployment(name, ns string) *DeploymentWrapper {
	t := template("server")
	t.Spec.RestartPolicy = ""
	t.Labels = map[string]string{"app": name}
	return &DeploymentWrapper{appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: meta(name, ns),
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: t,
		},
	}}
}

func (w *DeploymentWrapper) Annotate(k, v string) *DeploymentWrapper {
	annotate(&w.ObjectMeta, k, v)
	return w
}
func (w *DeploymentWrapper) Label(k, v string) *DeploymentWrapper {
	label(&w.ObjectMeta, k, v)
	return w
}
func (w *DeploymentWrapper) Replicas(n int32) *DeploymentWrapper {
	w.Spec.Replicas = ptr.To(n)
	return w
}
func (w *DeploymentWrapper) Resource(c int, r corev1.ResourceName, q string) *DeploymentWrapper {
	Resources(&w.Spec.Template, c, r, q)
	return w
}
func (w *DeploymentWrapper) Obj() *appsv1.Deployment { return w.Deployment.DeepCopy() }

func rayCluster(workerGroups ...string) rayv1.RayClusterSpec {
	head := template("ray-head")
	head.Spec.RestartPolicy = ""
	spec := rayv1.RayClusterSpec{
		RayVersion:    "2.40.0",
		HeadGroupSpec: rayv1.HeadGroupSpec{RayStartParams: map[string]string{}, Template: head},
	}
	for _, g := range workerGroups {
		t := template("ray-worker")
		t.Spec.RestartPolicy = ""
		spec.WorkerGroupSpecs = append(spec.WorkerGroupSpecs, rayv1.WorkerGroupSpec{
			GroupName: g, Replicas: ptr.To[int32](1), RayStartParams: map[string]string{}, Template: t,
		})
	}
	return spec
}

// RayJobWrapper builds a ray.io/v1 RayJob.
type RayJobWrapper struct{ rayv1.RayJob }

// MakeRayJob is a RayJob with a head and the named worker groups, one worker each.
func MakeRayJob(name, ns string, workerGroups ...string) *RayJobWrapper {
	c := rayCluster(workerGroups...)
	return &RayJobWrapper{rayv1.RayJob{
		TypeMeta:   metav1.TypeMeta{APIVersion: "ray.io/v1", Kind: "RayJob"},
		ObjectMeta: meta(name, ns),
		Spec:       rayv1.RayJobSpec{Entrypoint: "python main.py", RayClusterSpec: &c},
	}}
}

func (w *RayJobWrapper) Annotate(k, v string) *RayJobWrapper { annotate(&w.ObjectMeta, k, v); return w }

// WorkerResource sets request = limit on the first container of worker group g.
func (w *RayJobWrapper) WorkerResource(g int, r corev1.ResourceName, q string) *RayJobWrapper {
	Resources(&w.Spec.RayClusterSpec.WorkerGroupSpecs[g].Template, 0, r, q)
	return w
}

// Submitter adds a submitter pod template.
func (w *RayJobWrapper) Submitter() *RayJobWrapper {
	t := template("submitter")
	w.Spec.SubmitterPodTemplate = &t
	return w
}
func (w *RayJobWrapper) ClusterSelector(k, v string) *RayJobWrapper {
	w.Spec.ClusterSelector = map[string]string{k: v}
	return w
}
func (w *RayJobWrapper) NoCluster() *RayJobWrapper { w.Spec.RayClusterSpec = nil; return w }
func (w *RayJobWrapper) Autoscaling(on bool) *RayJobWrapper {
	w.Spec.RayClusterSpec.EnableInTreeAutoscaling = ptr.To(on)
	return w
}
func (w *RayJobWrapper) Obj() *rayv1.RayJob { return w.RayJob.DeepCopy() }

// RayServiceWrapper builds a ray.io/v1 RayService.
type RayServiceWrapper struct{ rayv1.RayService }

// MakeRayService is a RayService with a head and the named worker groups.
func MakeRayService(name, ns string, workerGroups ...string) *RayServiceWrapper {
	return &RayServiceWrapper{rayv1.RayService{
		TypeMeta:   metav1.TypeMeta{APIVersion: "ray.io/v1", Kind: "RayService"},
		ObjectMeta: meta(name, ns),
		Spec:       rayv1.RayServiceSpec{RayClusterSpec: rayCluster(workerGroups...)},
	}}
}

func (w *RayServiceWrapper) Annotate(k, v string) *RayServiceWrapper {
	annotate(&w.ObjectMeta, k, v)
	return w
}
func (w *RayServiceWrapper) Obj() *rayv1.RayService { return w.RayService.DeepCopy() }
