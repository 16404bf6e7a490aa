package mutate_test

import (
	"encoding/json"
	"math"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	. "github.com/silogen/kaiwo-webhook/internal/testobj"
	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
)

// cronJobOf wraps a Job's spec and metadata annotations as a CronJob's job template.
func cronJobOf(j *batchv1.Job) *batchv1.CronJob {
	return &batchv1.CronJob{TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "CronJob"},
		ObjectMeta: metav1.ObjectMeta{Name: "cj", Namespace: j.Namespace, Annotations: j.Annotations, Labels: j.Labels},
		Spec:       batchv1.CronJobSpec{Schedule: "@daily", JobTemplate: batchv1.JobTemplateSpec{Spec: j.Spec}}}
}

// statefulSetOf is a StatefulSet with a Deployment's template, replicas and annotations.
func statefulSetOf(d *appsv1.Deployment) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: d.Namespace, Annotations: d.Annotations, Labels: d.Labels},
		Spec:       appsv1.StatefulSetSpec{Replicas: d.Spec.Replicas, ServiceName: "s", Selector: d.Spec.Selector, Template: d.Spec.Template}}
}

// podOf is a bare Pod with a Job's pod template and annotations.
func podOf(j *batchv1.Job) *corev1.Pod {
	return &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: j.Namespace, Annotations: j.Annotations, Labels: j.Spec.Template.Labels},
		Spec:       j.Spec.Template.Spec}
}

func initGPUs(spec *corev1.PodSpec, q string) {
	spec.InitContainers = append(spec.InitContainers, corev1.Container{Name: "warm", Image: "busybox", Resources: corev1.ResourceRequirements{
		Limits: corev1.ResourceList{amd: resource.MustParse(q)}, Requests: corev1.ResourceList{amd: resource.MustParse(q)}}})
}

// TestK8sKindAttacksOnCreate: the rules hold on every template of a CronJob, StatefulSet and bare Pod, as a
// team user in a team-ml (Enforce, 32 GPUs per workload, allowed queues team-ml and team-ml-low) namespace
// would try to get around them.
func TestK8sKindAttacksOnCreate(t *testing.T) {
	cases := map[string]createAttack{
		"CronJob: 8 GPUs x parallelism 5": {obj: func() client.Object {
			return cronJobOf(gpuJob("8").Parallelism(5).Obj())
		}, want: []string{"maxGpusPerWorkload", "spec.jobTemplate.spec.parallelism=5"}},
		"CronJob: an init container of 40 GPUs": {obj: func() client.Object {
			c := cronJobOf(MakeJob("j", "ml").Obj())
			initGPUs(&c.Spec.JobTemplate.Spec.Template.Spec, "40")
			return c
		}, want: []string{"40 GPUs", "spec.jobTemplate.spec.template: 1 pods", "maxGpusPerWorkload"}},
		"CronJob: parallelism 2^31-1 x 8 GPUs": {obj: func() client.Object {
			return cronJobOf(gpuJob("8").Parallelism(math.MaxInt32).Obj())
		}, want: []string{"maxGpusPerWorkload"}},
		"CronJob: a GPU count that overflows an int64": {obj: func() client.Object {
			return cronJobOf(gpuJob("9223372036854775807").Parallelism(2).Obj())
		}, want: []string{"spec.jobTemplate.spec.template"}},
		"CronJob: the job template queued outside the allowed queues": {obj: func() client.Object {
			c := cronJobOf(gpuJob("8").Obj())
			c.Spec.JobTemplate.Labels = map[string]string{annotations.KueueQueueName: "other"}
			return c
		}, want: []string{"other", "team-ml"}},
		"CronJob: queueing none": {obj: func() client.Object {
			return cronJobOf(gpuJob("8").Annotate(annotations.Queueing, "none").Obj())
		}, want: []string{annotations.Queueing, "Enforce"}},
		"CronJob: a bad annotation": {obj: func() client.Object {
			return cronJobOf(MakeJob("j", "ml").Annotate(annotations.GPUs, "lots").Obj())
		}, want: []string{annotations.GPUs, "lots"}},
		// The Jobs a CronJob creates are left alone: a Kaiwo annotation on the job template is never read.
		"CronJob: a Kaiwo annotation on the job template": {obj: func() client.Object {
			c := cronJobOf(gpuJob("8").Obj())
			c.Spec.JobTemplate.Annotations = map[string]string{annotations.GPUs: "many"}
			return c
		}, want: []string{"spec.jobTemplate.metadata.annotations[kaiwo.silogen.ai/gpus]", `"many"`, "CronJob's own metadata.annotations"}},
		"CronJob with no Kaiwo annotation of its own, one on the job template": {obj: func() client.Object {
			c := cronJobOf(MakeJob("j", "ml").Obj())
			c.Spec.JobTemplate.Annotations = map[string]string{annotations.GPUs: "many"}
			return c
		}, want: []string{"spec.jobTemplate.metadata.annotations[kaiwo.silogen.ai/gpus]", `"many"`}},
		"CronJob: within the limit": {obj: func() client.Object {
			return cronJobOf(gpuJob("8").Parallelism(4).Obj())
		}},
		"StatefulSet: 8 GPUs x 5 replicas": {obj: func() client.Object {
			return statefulSetOf(MakeDeployment("d", "ml").Resource(0, amd, "8").Replicas(5).Obj())
		}, want: []string{"maxGpusPerWorkload", "spec.replicas=5"}},
		"StatefulSet: an init container of 40 GPUs": {obj: func() client.Object {
			s := statefulSetOf(MakeDeployment("d", "ml").Obj())
			initGPUs(&s.Spec.Template.Spec, "40")
			return s
		}, want: []string{"40 GPUs", "spec.template: 1 pods", "maxGpusPerWorkload"}},
		"StatefulSet: 2^31-1 replicas": {obj: func() client.Object {
			return statefulSetOf(MakeDeployment("d", "ml").Resource(0, amd, "8").Replicas(math.MaxInt32).Obj())
		}, want: []string{"maxGpusPerWorkload"}},
		"StatefulSet: a vendor not allowed": {obj: func() client.Object {
			return statefulSetOf(MakeDeployment("d", "ml").Resource(0, "nvidia.com/gpu", "1").Obj())
		}, want: []string{"nvidia", "allowedVendors"}},
		"StatefulSet: within the limit": {obj: func() client.Object {
			return statefulSetOf(MakeDeployment("d", "ml").Resource(0, amd, "8").Replicas(4).Obj())
		}},
		"Pod: 40 GPUs": {obj: func() client.Object {
			return podOf(gpuJob("40").Obj())
		}, want: []string{"maxGpusPerWorkload"}},
		"Pod: an init container of 40 GPUs": {obj: func() client.Object {
			p := podOf(MakeJob("j", "ml").Obj())
			initGPUs(&p.Spec, "40")
			return p
		}, want: []string{"40 GPUs", "the Pod: 1 pods", "maxGpusPerWorkload"}},
		"Pod: a queue not allowed": {obj: func() client.Object {
			return podOf(gpuJob("8").Annotate(annotations.Queue, "other").Obj())
		}, want: []string{"other", "locked"}},
		"Pod: a forged Job owner": {obj: func() client.Object {
			p := podOf(gpuJob("8").Obj())
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: "x", UID: "u", Controller: ptr.To(true)}}
			return p
		}, want: []string{"controller owner reference", user}},
		"Pod: a forged StatefulSet owner": {obj: func() client.Object {
			p := podOf(gpuJob("8").Obj())
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "x", UID: "u", Controller: ptr.To(true)}}
			return p
		}, want: []string{"controller owner reference", user}},
		"Pod: within the limit": {obj: func() client.Object {
			return podOf(gpuJob("8").Obj())
		}},
		// The API server's DefaultTolerationSeconds plugin adds these to every Pod before the webhooks run.
		"Pod: with the API server's default tolerations, tolerations locked": {obj: func() client.Object {
			p := podOf(gpuJob("8").Obj())
			for _, k := range []string{"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"} {
				p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: k, Operator: corev1.TolerationOpExists,
					Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)})
			}
			return p
		}},
		"Pod: not-ready tolerated forever, tolerations locked": {obj: func() client.Object {
			p := podOf(gpuJob("8").Obj())
			p.Spec.Tolerations = []corev1.Toleration{{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}}
			return p
		}, want: []string{"spec.tolerations[0]", "tolerations are locked"}},
	}
	runCreateAttacks(t, cases, teamML(t))
}

// TestK8sKindAttacksOnUpdate: an UPDATE of an admitted CronJob or StatefulSet that grows it past the limit,
// adds GPUs to an init container or moves the job template's queue is denied; shrinking passes.
func TestK8sKindAttacksOnUpdate(t *testing.T) {
	pol := teamML(t)
	cj, err := admit(t, cronJobOf(gpuJob("8").Parallelism(2).Obj()), pol)
	if err != nil {
		t.Fatal(err)
	}
	grown := cj.DeepCopyObject().(*batchv1.CronJob)
	grown.Spec.JobTemplate.Spec.Parallelism = ptr.To[int32](5)
	wantDenied(t, validate(grown, cj, pol), "maxGpusPerWorkload", "spec.jobTemplate.spec.parallelism=5")
	init := cj.DeepCopyObject().(*batchv1.CronJob)
	initGPUs(&init.Spec.JobTemplate.Spec.Template.Spec, "40")
	wantDenied(t, validate(init, cj, pol), "80 GPUs", "maxGpusPerWorkload")
	// The mutation puts the CronJob's queue on the job template; a later webhook that moves it is caught.
	elsewhere := cj.DeepCopyObject().(*batchv1.CronJob)
	elsewhere.Spec.JobTemplate.Labels[annotations.KueueQueueName] = "team-ml-low"
	wantDenied(t, validate(elsewhere, nil, pol), "spec.jobTemplate.metadata.labels[kueue.x-k8s.io/queue-name]", "team-ml-low", "must be the object's queue")
	moved := cj.DeepCopyObject().(*batchv1.CronJob)
	moved.Spec.JobTemplate.Labels[annotations.KueueQueueName] = "other"
	wantDenied(t, validate(moved, cj, pol), "spec.jobTemplate.metadata.labels[kueue.x-k8s.io/queue-name]")
	unqueued := cj.DeepCopyObject().(*batchv1.CronJob)
	delete(unqueued.Spec.JobTemplate.Labels, annotations.KueueQueueName)
	wantDenied(t, validate(unqueued, cj, pol), "spec.jobTemplate.metadata.labels[kueue.x-k8s.io/queue-name]", "Required")
	annotated := cj.DeepCopyObject().(*batchv1.CronJob)
	annotated.Spec.JobTemplate.Annotations = map[string]string{annotations.GPUs: "64"}
	wantDenied(t, validate(annotated, cj, pol), "spec.jobTemplate.metadata.annotations[kaiwo.silogen.ai/gpus]", `"64"`)
	shrunk := cj.DeepCopyObject().(*batchv1.CronJob)
	shrunk.Spec.JobTemplate.Spec.Parallelism = ptr.To[int32](1)
	if err := validate(shrunk, cj, pol); err != nil {
		t.Errorf("a CronJob that shrinks: %v", err)
	}

	st, err := admit(t, statefulSetOf(MakeDeployment("d", "ml").Resource(0, amd, "8").Replicas(2).Obj()), pol)
	if err != nil {
		t.Fatal(err)
	}
	sgrown := st.DeepCopyObject().(*appsv1.StatefulSet)
	sgrown.Spec.Replicas = ptr.To[int32](5)
	wantDenied(t, validate(sgrown, st, pol), "maxGpusPerWorkload", "spec.replicas=5")
	// The scale subresource, as kubectl scale or an HPA: the StatefulSet is read and its replicas replaced.
	wantDenied(t, mutate.ValidateScale(kindOf(st), st, 100, pol), "800 GPUs", "spec.replicas=100", "maxGpusPerWorkload (32)")
	wantDenied(t, mutate.ValidateScale(kindOf(st), st, math.MaxInt32, pol), "maxGpusPerWorkload")
	for _, n := range []int32{0, 1, 4} {
		if err := mutate.ValidateScale(kindOf(st), st, n, pol); err != nil {
			t.Errorf("scale a StatefulSet to %d: %v", n, err)
		}
	}
}

// TestCronJobsJobsAreLeftAlone: the Job the CronJob controller creates from an admitted CronJob carries
// what the template says; neither webhook changes or denies it. The same Job written by a team user with
// the CronJob's owner reference is handled as any Job (mutated, then held to the rules).
func TestCronJobsJobsAreLeftAlone(t *testing.T) {
	pol := teamML(t)
	obj, err := admit(t, cronJobOf(gpuJob("8").Parallelism(2).Obj()), pol)
	if err != nil {
		t.Fatal(err)
	}
	cj := obj.(*batchv1.CronJob)
	// What the CronJob controller creates: the job template's labels, annotations and spec, a controller reference.
	made := &batchv1.Job{TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{Name: "cj-29000000", Namespace: "ml", Labels: cj.Spec.JobTemplate.Labels,
			Annotations:     cj.Spec.JobTemplate.Annotations,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: "cj", UID: "u", Controller: ptr.To(true)}}},
		Spec: *cj.Spec.JobTemplate.Spec.DeepCopy()}
	if !ptr.Deref(made.Spec.Suspend, false) || made.Labels[annotations.KueueQueueName] != "team-ml" {
		t.Fatalf("the job template is not queued: suspend %v, labels %v", made.Spec.Suspend, made.Labels)
	}
	const cronController = "system:serviceaccount:kube-system:cronjob-controller"
	out, err := mutateIn(mutate.Input{Object: made, Policy: pol, User: cronController})
	if err != nil {
		t.Fatalf("the CronJob controller's Job: %v", err)
	}
	if out.Managed || out.Object != client.Object(made) {
		t.Errorf("the CronJob controller's Job was mutated again: %+v", out)
	}
	if err := validateAs(made, nil, pol, cronController); err != nil {
		t.Errorf("the CronJob controller's Job is denied: %v", err)
	}
	// A team user who writes the owner reference by hand gets no exemption: the Job is checked as a Job
	// (here: it lacks the user label the mutation would set).
	wantDenied(t, validateAs(made, nil, pol, user), annotations.User)
	forged, err := mutateIn(mutate.Input{Object: made, Policy: pol, User: user})
	if err != nil {
		t.Fatal(err)
	}
	if !forged.Managed || forged.Object.GetLabels()[annotations.User] != "alice-example.com" {
		t.Errorf("a team user's Job with a CronJob owner is not handled as a Job: %+v", forged.Object.GetLabels())
	}
	raw, _ := json.Marshal(forged.Object)
	if _, err := validateIn(mutate.Review{Operation: mutate.OpCreate, Object: forged.Object, Raw: raw, Policy: pol, User: user}); err != nil {
		t.Errorf("the mutated Job: %v", err)
	}
}

// TestWorkloadPodsAreLeftAlone: a Pod that a Job, ReplicaSet or StatefulSet controller creates is not mutated
// and passes, even in an Enforce namespace with GPUs and no queue label of its own.
func TestWorkloadPodsAreLeftAlone(t *testing.T) {
	pol := teamML(t)
	for _, owner := range [][2]string{{"batch/v1", "Job"}, {"apps/v1", "ReplicaSet"}, {"apps/v1", "StatefulSet"}, {"ray.io/v1", "RayCluster"}} {
		p := podOf(gpuJob("8").Obj())
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: owner[0], Kind: owner[1], Name: "x", UID: "u", Controller: ptr.To(true)}}
		out, err := mutateIn(mutate.Input{Object: p, Policy: pol, User: "system:serviceaccount:kube-system:job-controller"})
		if err != nil || out.Managed {
			t.Errorf("%s's Pod: mutated %v, %v", owner[1], out != nil && out.Managed, err)
		}
		if err := validateAs(p, nil, pol, "system:serviceaccount:kube-system:job-controller"); err != nil {
			t.Errorf("%s's Pod: %v", owner[1], err)
		}
	}
}
