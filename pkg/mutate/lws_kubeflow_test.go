package mutate_test

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	kftraining "github.com/kubeflow/training-operator/pkg/apis/kubeflow.org/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	lwsv1 "sigs.k8s.io/lws/api/leaderworkerset/v1"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// podTemplate is a one-container template asking for gpus of r ("" for none).
func podTemplate(name string, r corev1.ResourceName, gpus string) corev1.PodTemplateSpec {
	c := corev1.Container{Name: name, Image: "rocm/pytorch"}
	if gpus != "" {
		q := resource.MustParse(gpus)
		c.Resources = corev1.ResourceRequirements{Limits: corev1.ResourceList{r: q}, Requests: corev1.ResourceList{r: q}}
	}
	return corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{c}}}
}

// makeLWS is a LeaderWorkerSet of replicas groups of size pods, the worker template asking for gpus;
// leader adds a leader template without GPUs.
func makeLWS(replicas, size int32, gpus string, leader bool) *lwsv1.LeaderWorkerSet {
	l := &lwsv1.LeaderWorkerSet{TypeMeta: metav1.TypeMeta{APIVersion: "leaderworkerset.x-k8s.io/v1", Kind: "LeaderWorkerSet"},
		ObjectMeta: metav1.ObjectMeta{Name: "l", Namespace: "ml"},
		Spec: lwsv1.LeaderWorkerSetSpec{Replicas: ptr.To(replicas), LeaderWorkerTemplate: lwsv1.LeaderWorkerTemplate{
			Size: ptr.To(size), WorkerTemplate: podTemplate("worker", amd, gpus)}}}
	if leader {
		l.Spec.LeaderWorkerTemplate.LeaderTemplate = ptr.To(podTemplate("leader", amd, ""))
	}
	return l
}

// makePyTorchJob is a PyTorchJob of one Master and workers Workers, each asking for gpus.
func makePyTorchJob(workers int32, gpus string) *kftraining.PyTorchJob {
	return &kftraining.PyTorchJob{TypeMeta: metav1.TypeMeta{APIVersion: "kubeflow.org/v1", Kind: "PyTorchJob"},
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ml"},
		Spec: kftraining.PyTorchJobSpec{PyTorchReplicaSpecs: map[kftraining.ReplicaType]*kftraining.ReplicaSpec{
			"Master": {Replicas: ptr.To[int32](1), Template: podTemplate("pytorch", amd, gpus)},
			"Worker": {Replicas: ptr.To(workers), Template: podTemplate("pytorch", amd, gpus)},
		}}}
}

func annotate(o client.Object, kv ...string) client.Object {
	a := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		a[kv[i]] = kv[i+1]
	}
	o.SetAnnotations(a)
	return o
}

func withGPUInit(t *corev1.PodTemplateSpec, q string) {
	t.Spec.InitContainers = append(t.Spec.InitContainers, podTemplate("init", amd, q).Spec.Containers[0])
}

// TestLWSPlan: the GPUs of a group are planned over its pods, the leader with the workers' GPUs, and the
// env vars describe one group.
func TestLWSPlan(t *testing.T) {
	out, _ := run(t, annotate(makeLWS(3, 1, "", true), annotations.GPUs, "16"), nil)
	l := out.(*lwsv1.LeaderWorkerSet)
	if got := ptr.Deref(l.Spec.LeaderWorkerTemplate.Size, 0); got != 2 {
		t.Errorf("size = %d, want 2 pods of 8 GPUs on 8-GPU nodes", got)
	}
	for _, tpl := range []*corev1.PodTemplateSpec{l.Spec.LeaderWorkerTemplate.LeaderTemplate, &l.Spec.LeaderWorkerTemplate.WorkerTemplate} {
		c := tpl.Spec.Containers[0]
		if q := c.Resources.Limits[amd]; q.Value() != 8 {
			t.Errorf("%s: %s = %s, want 8", c.Name, amd, q.String())
		}
		env := map[string]string{}
		for _, e := range c.Env {
			env[e.Name] = e.Value
		}
		if env[mutate.EnvNumGPUs] != "16" || env[mutate.EnvNumReplicas] != "2" || env[mutate.EnvNumGPUsPerReplica] != "8" {
			t.Errorf("%s: env %v, want NUM_GPUS=16 NUM_REPLICAS=2 NUM_GPUS_PER_REPLICA=8 (one group)", c.Name, env)
		}
	}
	if _, queued := l.Labels[annotations.KueueQueueName]; queued {
		t.Errorf("a LeaderWorkerSet is serving: not queued unless asked, got labels %v", l.Labels)
	}
	// Asked: the queue label, and Kueue's serving pod-group annotations on both templates.
	out, _ = run(t, annotate(makeLWS(1, 2, "8", true), annotations.Queueing, "kueue"), nil)
	l = out.(*lwsv1.LeaderWorkerSet)
	if l.Labels[annotations.KueueQueueName] == "" {
		t.Errorf("queueing kueue: no queue label: %v", l.Labels)
	}
	for _, tpl := range []*corev1.PodTemplateSpec{l.Spec.LeaderWorkerTemplate.LeaderTemplate, &l.Spec.LeaderWorkerTemplate.WorkerTemplate} {
		if tpl.Annotations[annotations.KueuePodGroupServing] != "true" || tpl.Annotations[annotations.KueuePodSuspendingParent] != "leaderworkerset.x-k8s.io/leaderworkerset" {
			t.Errorf("queued template annotations %v, want Kueue's serving pod-group annotations", tpl.Annotations)
		}
	}
}

// TestPyTorchJobPlan: the total is planned over the Master and the Workers; queued with runPolicy.suspend.
func TestPyTorchJobPlan(t *testing.T) {
	out, _ := run(t, annotate(makePyTorchJob(1, ""), annotations.GPUs, "24"), nil)
	j := out.(*kftraining.PyTorchJob)
	if got := ptr.Deref(j.Spec.PyTorchReplicaSpecs["Worker"].Replicas, 0); got != 2 {
		t.Errorf("Worker replicas = %d, want 2 (3 pods x 8 GPUs, the Master is one)", got)
	}
	for rt, r := range j.Spec.PyTorchReplicaSpecs {
		if q := r.Template.Spec.Containers[0].Resources.Limits[amd]; q.Value() != 8 {
			t.Errorf("%s: %s = %s, want 8", rt, amd, q.String())
		}
	}
	if !ptr.Deref(j.Spec.RunPolicy.Suspend, false) || j.Labels[annotations.KueueQueueName] == "" {
		t.Errorf("not queued: suspend %v, labels %v", j.Spec.RunPolicy.Suspend, j.Labels)
	}
	if ptr.Deref(j.Spec.RunPolicy.TTLSecondsAfterFinished, 0) != 3600 {
		t.Errorf("runPolicy.ttlSecondsAfterFinished = %v, want the default 3600", j.Spec.RunPolicy.TTLSecondsAfterFinished)
	}
}

// TestLWSAndPyTorchJobAttacks: GPUs through every template, init containers, group sizes and replica counts
// that multiply past the limit or past int64, and what Kueue cannot queue.
func TestLWSAndPyTorchJobAttacks(t *testing.T) {
	pol := teamML(t)
	lws := func(f func(l *lwsv1.LeaderWorkerSet)) func() client.Object {
		return func() client.Object {
			l := makeLWS(1, 2, "8", true)
			f(l)
			return l
		}
	}
	pt := func(f func(j *kftraining.PyTorchJob)) func() client.Object {
		return func() client.Object {
			j := makePyTorchJob(1, "8")
			f(j)
			return j
		}
	}
	cases := map[string]createAttack{
		"LWS: 5 groups of 2 x 8 GPUs": {obj: lws(func(l *lwsv1.LeaderWorkerSet) { l.Spec.Replicas = ptr.To[int32](5) }),
			want: []string{"40 GPUs", "spec.replicas=5 x (spec.leaderWorkerTemplate.size=2 - 1 leader)", "maxGpusPerWorkload (32)"}},
		"LWS: GPUs on the leader template": {obj: lws(func(l *lwsv1.LeaderWorkerSet) {
			l.Spec.LeaderWorkerTemplate.LeaderTemplate = ptr.To(podTemplate("leader", amd, "40"))
		}), want: []string{"spec.leaderWorkerTemplate.leaderTemplate", "maxGpusPerWorkload (32)"}},
		"LWS: GPUs on an init container of the leader": {obj: lws(func(l *lwsv1.LeaderWorkerSet) {
			withGPUInit(l.Spec.LeaderWorkerTemplate.LeaderTemplate, "40")
		}), want: []string{"spec.leaderWorkerTemplate.leaderTemplate", "maxGpusPerWorkload (32)"}},
		"LWS: NVIDIA GPUs on a worker init container": {obj: lws(func(l *lwsv1.LeaderWorkerSet) {
			l.Spec.LeaderWorkerTemplate.WorkerTemplate.Spec.InitContainers = []corev1.Container{podTemplate("init", nvidia, "1").Spec.Containers[0]}
		}), want: []string{"spec.leaderWorkerTemplate.workerTemplate.spec.initContainers[0].resources.limits[nvidia.com/gpu]", `vendor "nvidia" is not allowed`}},
		"LWS: replicas x size at the int32 limits, x 8 GPUs past int64": {obj: lws(func(l *lwsv1.LeaderWorkerSet) {
			l.Spec.Replicas, l.Spec.LeaderWorkerTemplate.Size = ptr.To[int32](math.MaxInt32), ptr.To[int32](math.MaxInt32)
		}), want: []string{"spec.leaderWorkerTemplate.workerTemplate", "4611686011984936962 pods x 8 amd.com/gpu", "do not fit a 64-bit count"}},
		"LWS: replicas x size at the int32 limits, 1 GPU": {obj: lws(func(l *lwsv1.LeaderWorkerSet) {
			l.Spec.Replicas, l.Spec.LeaderWorkerTemplate.Size = ptr.To[int32](math.MaxInt32), ptr.To[int32](math.MaxInt32)
			l.Spec.LeaderWorkerTemplate.WorkerTemplate = podTemplate("worker", amd, "1")
		}), want: []string{"the workload's 4611686011984936962 GPUs", "maxGpusPerWorkload (32)"}},
		"LWS: GPUs per pod past int64": {obj: lws(func(l *lwsv1.LeaderWorkerSet) {
			l.Spec.LeaderWorkerTemplate.WorkerTemplate = podTemplate("worker", amd, "9223372036854775807")
		}), want: []string{"spec.leaderWorkerTemplate.workerTemplate.spec.containers", "GPUs per pod must be from 0 to 2147483647"}},
		"LWS: a Secret outside allowedSecrets on the leader": {obj: lws(func(l *lwsv1.LeaderWorkerSet) {
			l.Spec.LeaderWorkerTemplate.LeaderTemplate.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "DB", ValueFrom: &corev1.EnvVarSource{
				SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "prod-db"}, Key: "k"}}}}
		}), want: []string{"spec.leaderWorkerTemplate.leaderTemplate.spec.containers[0].env[0].valueFrom.secretKeyRef.name", "allowedSecrets"}},
		"LWS: a group too large for a node": {obj: func() client.Object { return annotate(makeLWS(1, 1, "", false), annotations.GPUsPerReplica, "16") },
			want: []string{annotations.GPUsPerReplica, "16"}},
		"PyTorchJob: 5 Workers of 8 GPUs": {obj: pt(func(j *kftraining.PyTorchJob) { j.Spec.PyTorchReplicaSpecs["Worker"].Replicas = ptr.To[int32](5) }),
			want: []string{"48 GPUs", "spec.pytorchReplicaSpecs[Worker].replicas=5", "maxGpusPerWorkload (32)"}},
		"PyTorchJob: GPUs in a replica type Kaiwo does not plan": {obj: pt(func(j *kftraining.PyTorchJob) {
			j.Spec.PyTorchReplicaSpecs["Evil"] = &kftraining.ReplicaSpec{Replicas: ptr.To[int32](4), Template: podTemplate("x", amd, "8")}
		}), want: []string{"spec.pytorchReplicaSpecs[Evil].template", "maxGpusPerWorkload (32)"}},
		"PyTorchJob: GPUs on the Master's init container": {obj: pt(func(j *kftraining.PyTorchJob) {
			withGPUInit(&j.Spec.PyTorchReplicaSpecs["Master"].Template, "40")
		}), want: []string{"spec.pytorchReplicaSpecs[Master].template", "maxGpusPerWorkload (32)"}},
		"PyTorchJob: an elastic policy that may scale to 10 Workers": {obj: pt(func(j *kftraining.PyTorchJob) {
			j.Spec.ElasticPolicy = &kftraining.ElasticPolicy{MinReplicas: ptr.To[int32](1), MaxReplicas: ptr.To[int32](10)}
		}), want: []string{"spec.elasticPolicy", "Kueue admits a fixed number of Workers"}},
		"PyTorchJob: an autoscaling elastic policy": {obj: pt(func(j *kftraining.PyTorchJob) {
			j.Spec.ElasticPolicy = &kftraining.ElasticPolicy{MinReplicas: ptr.To[int32](1), MaxReplicas: ptr.To[int32](1), Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType}}}
		}), want: []string{"spec.elasticPolicy.metrics", "cannot autoscale"}},
		"PyTorchJob: Workers at the int32 limit of 8 GPUs": {obj: pt(func(j *kftraining.PyTorchJob) {
			j.Spec.PyTorchReplicaSpecs["Worker"].Replicas = ptr.To[int32](math.MaxInt32)
		}), want: []string{"maxGpusPerWorkload (32)"}},
		"PyTorchJob: unqueued where the policy must queue it": {obj: func() client.Object {
			return annotate(makePyTorchJob(1, "8"), annotations.Queueing, "none")
		}, want: []string{annotations.Queueing, "Enforce"}},
		"allowed: LWS of 2 groups of 2 x 8 GPUs": {obj: lws(func(l *lwsv1.LeaderWorkerSet) {
			l.Spec.LeaderWorkerTemplate.LeaderTemplate = ptr.To(podTemplate("leader", amd, "8"))
		})},
		"allowed: PyTorchJob of a Master and 3 Workers x 8 GPUs": {obj: pt(func(j *kftraining.PyTorchJob) { j.Spec.PyTorchReplicaSpecs["Worker"].Replicas = ptr.To[int32](3) })},
	}
	runCreateAttacks(t, cases, pol)
}

// TestLWSAndPyTorchJobUpdates: an UPDATE may not grow the counted GPUs past the limit, whatever count it
// changes.
func TestLWSAndPyTorchJobUpdates(t *testing.T) {
	pol := teamML(t)
	admitted := func(o client.Object) client.Object {
		out, err := admit(t, o, pol)
		if err != nil {
			t.Fatalf("the stored object is not admitted: %v", err)
		}
		return out
	}
	cases := map[string]struct {
		old  client.Object
		edit func(o client.Object)
		want []string
	}{
		"LWS: replicas grown": {old: makeLWS(1, 2, "8", false), edit: func(o client.Object) {
			o.(*lwsv1.LeaderWorkerSet).Spec.Replicas = ptr.To[int32](3)
		}, want: []string{"48 GPUs", "maxGpusPerWorkload (32)"}},
		"LWS: size grown": {old: makeLWS(1, 2, "8", true), edit: func(o client.Object) {
			o.(*lwsv1.LeaderWorkerSet).Spec.LeaderWorkerTemplate.Size = ptr.To[int32](6)
		}, want: []string{"40 GPUs", "maxGpusPerWorkload (32)"}},
		"LWS: a GPU init container added to the leader": {old: makeLWS(1, 2, "8", true), edit: func(o client.Object) {
			withGPUInit(o.(*lwsv1.LeaderWorkerSet).Spec.LeaderWorkerTemplate.LeaderTemplate, "32")
		}, want: []string{"spec.leaderWorkerTemplate.leaderTemplate", "maxGpusPerWorkload (32)"}},
		"PyTorchJob: Workers grown": {old: makePyTorchJob(1, "8"), edit: func(o client.Object) {
			o.(*kftraining.PyTorchJob).Spec.PyTorchReplicaSpecs["Worker"].Replicas = ptr.To[int32](4)
		}, want: []string{"40 GPUs", "maxGpusPerWorkload (32)"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			old := admitted(tc.old)
			obj := old.DeepCopyObject().(client.Object)
			tc.edit(obj)
			wantDenied(t, validate(obj, old, pol), tc.want...)
		})
	}
}

// TestObjectsOfLWSAndKubeflowControllers: what the LeaderWorkerSet, training-operator and trainer
// controllers create passes when they create it; a team user who writes the same owner reference is
// denied; a team user's edit of an LWS StatefulSet that grows it is held to the limit.
func TestObjectsOfLWSAndKubeflowControllers(t *testing.T) {
	pol := teamML(t)
	const (
		lwsCtrl     = "system:serviceaccount:lws-system:lws-controller-manager"
		kfCtrl      = "system:serviceaccount:kubeflow:training-operator"
		trainerCtrl = "system:serviceaccount:kubeflow-system:kubeflow-trainer-controller-manager"
		ssCtrl      = "system:serviceaccount:kube-system:statefulset-controller"
	)
	tpl := podTemplate("c", amd, "8")
	ss := func(owner metav1.OwnerReference) *appsv1.StatefulSet {
		return &appsv1.StatefulSet{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
			ObjectMeta: metav1.ObjectMeta{Name: "l-0", Namespace: "ml", OwnerReferences: []metav1.OwnerReference{owner}},
			Spec:       appsv1.StatefulSetSpec{Replicas: ptr.To[int32](1), Template: tpl}}
	}
	pod := func(owner metav1.OwnerReference) *corev1.Pod {
		return &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: "p-0", Namespace: "ml", OwnerReferences: []metav1.OwnerReference{owner}}, Spec: tpl.Spec}
	}
	jobSet := func(owner metav1.OwnerReference) map[string]any {
		return map[string]any{"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet",
			"metadata": map[string]any{"name": "t", "namespace": "ml", "ownerReferences": []metav1.OwnerReference{owner}},
			"spec":     map[string]any{"replicatedJobs": []any{map[string]any{"name": "node", "template": map[string]any{"spec": map[string]any{"template": tpl}}}}}}
	}
	owner := func(apiVersion, kind string) metav1.OwnerReference {
		return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: "o", UID: "u", Controller: ptr.To(true)}
	}
	cases := []struct {
		name string
		obj  any
		by   string
	}{
		{"an LWS's leader StatefulSet", ss(owner("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet")), lwsCtrl},
		{"a leader Pod's worker StatefulSet", ss(owner("v1", "Pod")), lwsCtrl},
		{"a StatefulSet's Pod", pod(owner("apps/v1", "StatefulSet")), ssCtrl},
		{"a PyTorchJob's Pod", pod(owner("kubeflow.org/v1", "PyTorchJob")), kfCtrl},
		{"a TrainJob's JobSet", jobSet(owner("trainer.kubeflow.org/v1alpha1", "TrainJob")), trainerCtrl},
	}
	for _, tc := range cases {
		raw, _ := json.Marshal(tc.obj)
		t.Run(tc.name+"/by its controller", func(t *testing.T) {
			if err := kinds.ValidateUnhandledBy(raw, pol, tc.by); err != nil {
				t.Fatalf("want allowed, got %v", err)
			}
		})
		for _, forger := range []string{user, "system:serviceaccount:ml:builder"} {
			t.Run(tc.name+"/forged by "+forger, func(t *testing.T) {
				wantDenied(t, kinds.ValidateUnhandledBy(raw, pol, forger), "Enforce", "exempts it only when a controller makes the request")
			})
		}
	}
	// A team user scales an LWS's StatefulSet: held to the limit; the LWS controller's own update passes.
	old := ss(owner("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"))
	grown := old.DeepCopy()
	grown.Spec.Replicas = ptr.To[int32](5)
	checkControlled(t, grown, old, nil, pol, "", []string{"40 GPUs", "spec.replicas=5", "maxGpusPerWorkload (32)"})
	checkControlled(t, grown, old, nil, pol, lwsCtrl, nil)
	checkControlled(t, grown, old, policy.Default(), pol, "", nil)
}

// TestLWSPlanBadValues: bad annotation values name the field and what is allowed; nothing is half-applied.
func TestLWSPlanBadValues(t *testing.T) {
	for _, tc := range []struct{ key, value, want string }{
		{annotations.GPUs, "-1", annotations.GPUs},
		{annotations.GPUs, "99999999999", annotations.GPUs},
		{annotations.Replicas, "3", "must divide"},
	} {
		in := annotate(makeLWS(1, 1, "", true), annotations.GPUs, "16", tc.key, tc.value)
		if tc.key == annotations.GPUs {
			in = annotate(makeLWS(1, 1, "", true), tc.key, tc.value)
		}
		_, err := mutateIn(mutate.Input{Object: in, User: user})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%s: got %v, want a denial naming %q", tc.key, tc.value, err, tc.want)
		}
		if got := ptr.Deref(in.(*lwsv1.LeaderWorkerSet).Spec.LeaderWorkerTemplate.Size, 0); got != 1 {
			t.Errorf("%s=%s: the input changed (size %d)", tc.key, tc.value, got)
		}
	}
}

// TestLWSAndPyTorchJobScale: the scale subresource (an LWS's groups, a PyTorchJob's Workers) is held to
// the GPU limit, as a Deployment's.
func TestLWSAndPyTorchJobScale(t *testing.T) {
	pol := teamML(t)
	lws, err := admit(t, makeLWS(1, 2, "8", false), pol)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := admit(t, makePyTorchJob(1, "8"), pol)
	if err != nil {
		t.Fatal(err)
	}
	wantDenied(t, mutate.ValidateScale(kindOf(lws), lws, 3, pol), "48 GPUs", "spec.replicas=3", "maxGpusPerWorkload (32)")
	wantDenied(t, mutate.ValidateScale(kindOf(pt), pt, 4, pol), "40 GPUs", "spec.pytorchReplicaSpecs[Worker].replicas=4", "maxGpusPerWorkload (32)")
	wantDenied(t, mutate.ValidateScale(kindOf(lws), lws, -1, pol), "spec.replicas", "must be >= 0")
	for _, o := range []client.Object{lws, pt} {
		if err := mutate.ValidateScale(kindOf(o), o, 2, pol); err != nil {
			t.Errorf("%T scaled within the limit: %v", o, err)
		}
	}
}
