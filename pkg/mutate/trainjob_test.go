package mutate_test

import (
	"math"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	trainer "github.com/silogen/kaiwo-webhook/internal/trainerapi"
	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
)

// makeTrainJob is a TrainJob of nodes nodes with gpus AMD GPUs per node ("" for no resources).
func makeTrainJob(nodes int32, gpus string) *trainer.TrainJob {
	j := &trainer.TrainJob{TypeMeta: metav1.TypeMeta{APIVersion: "trainer.kubeflow.org/v1alpha1", Kind: "TrainJob"},
		ObjectMeta: metav1.ObjectMeta{Name: "t", Namespace: "ml"},
		Spec: trainer.TrainJobSpec{RuntimeRef: trainer.RuntimeRef{Name: "torch-distributed"},
			Trainer: &trainer.Trainer{Image: ptr.To("rocm/pytorch"), NumNodes: ptr.To(nodes)}}}
	if gpus != "" {
		q := resource.MustParse(gpus)
		j.Spec.Trainer.ResourcesPerNode = &corev1.ResourceRequirements{Limits: corev1.ResourceList{amd: q}, Requests: corev1.ResourceList{amd: q}}
	}
	return j
}

// nodePatch is a runtime patch of manager for the "node" job's pod.
func nodePatch(manager string, ps trainer.PodSpecPatch) trainer.RuntimePatch {
	return trainer.RuntimePatch{Manager: manager, TrainingRuntimeSpec: &trainer.TrainingRuntimeSpecPatch{Template: &trainer.JobSetTemplatePatch{
		Spec: &trainer.JobSetSpecPatch{ReplicatedJobs: []trainer.ReplicatedJobPatch{{Name: "node", Template: &trainer.JobTemplatePatch{
			Spec: &trainer.JobSpecPatch{Template: &trainer.PodTemplatePatch{Spec: &ps}}}}}}}}}
}

// TestTrainJobPlan: the total is planned over numNodes; env goes to spec.trainer.env, pod-level parts to
// Kaiwo's runtime patch (before Kueue's); queued with spec.suspend.
func TestTrainJobPlan(t *testing.T) {
	in := makeTrainJob(1, "")
	in.Spec.RuntimePatches = []trainer.RuntimePatch{{Manager: "kueue.x-k8s.io/manager"}}
	out, _ := run(t, annotate(in, annotations.GPUs, "24", annotations.WorkloadConfigMap, "code"), teamML(t))
	j := out.(*trainer.TrainJob)
	tr := j.Spec.Trainer
	if ptr.Deref(tr.NumNodes, 0) != 3 {
		t.Errorf("numNodes = %v, want 3 (24 GPUs on 8-GPU nodes)", tr.NumNodes)
	}
	if q := tr.ResourcesPerNode.Limits[amd]; q.Value() != 8 {
		t.Errorf("resourcesPerNode %v, want 8 %s", tr.ResourcesPerNode, amd)
	}
	env := map[string]string{}
	for _, e := range tr.Env {
		env[e.Name] = e.Value
	}
	if env[mutate.EnvNumGPUs] != "24" || env[mutate.EnvNumReplicas] != "3" || env[mutate.EnvNumGPUsPerReplica] != "8" {
		t.Errorf("spec.trainer.env %v, want NUM_GPUS=24 NUM_REPLICAS=3 NUM_GPUS_PER_REPLICA=8", env)
	}
	if len(j.Spec.RuntimePatches) != 2 || j.Spec.RuntimePatches[0].Manager != "kaiwo.silogen.ai/webhook" || j.Spec.RuntimePatches[1].Manager != "kueue.x-k8s.io/manager" {
		t.Fatalf("runtime patches %+v, want Kaiwo's first, then Kueue's", j.Spec.RuntimePatches)
	}
	ps := j.Spec.RuntimePatches[0].TrainingRuntimeSpec.Template.Spec.ReplicatedJobs[0].Template.Spec.Template.Spec
	vols := map[string]bool{}
	for _, v := range ps.Volumes {
		vols[v.Name] = true
	}
	if !vols["kaiwo-workload"] || !vols["dshm"] || len(ps.Tolerations) != 1 || ps.NodeSelector["node-pool"] != "gpu" || len(ps.ImagePullSecrets) != 1 {
		t.Errorf("Kaiwo's patch %+v lacks the code volume, /dev/shm, or team-ml's toleration, nodeSelector, pull secret", ps)
	}
	if !ptr.Deref(j.Spec.Suspend, false) || j.Labels[annotations.KueueQueueName] != "team-ml" {
		t.Errorf("not queued: suspend %v, labels %v", j.Spec.Suspend, j.Labels)
	}
}

// TestTrainJobAttacks: GPUs past the limit through numNodes, a missing numNodes, forged or foreign runtime
// patches, initializer Secrets, and a policy patch a TrainJob cannot carry.
func TestTrainJobAttacks(t *testing.T) {
	pol := teamML(t)
	tj := func(f func(j *trainer.TrainJob)) func() client.Object {
		return func() client.Object {
			j := makeTrainJob(2, "8")
			f(j)
			return j
		}
	}
	secretEnv := func(name string) []corev1.EnvVar {
		return []corev1.EnvVar{{Name: "S", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: "k"}}}}
	}
	cases := map[string]createAttack{
		"5 nodes of 8 GPUs": {obj: tj(func(j *trainer.TrainJob) { j.Spec.Trainer.NumNodes = ptr.To[int32](5) }),
			want: []string{"40 GPUs", "spec.trainer.numNodes=5", "maxGpusPerWorkload (32)"}},
		"numNodes at the int32 limit": {obj: tj(func(j *trainer.TrainJob) { j.Spec.Trainer.NumNodes = ptr.To[int32](math.MaxInt32) }),
			want: []string{"17179869176 GPUs", "maxGpusPerWorkload (32)"}},
		"GPUs per node past int64": {obj: tj(func(j *trainer.TrainJob) {
			q := resource.MustParse("99999999999999999999")
			j.Spec.Trainer.ResourcesPerNode.Limits[amd], j.Spec.Trainer.ResourcesPerNode.Requests[amd] = q, q
		}), want: []string{"spec.trainer.spec.containers"}},
		"GPUs without numNodes": {obj: tj(func(j *trainer.TrainJob) { j.Spec.Trainer.NumNodes = nil }),
			want: []string{"spec.trainer.numNodes: Required", "the runtime's default is not visible"}},
		"NVIDIA GPUs": {obj: tj(func(j *trainer.TrainJob) {
			q := resource.MustParse("1")
			j.Spec.Trainer.ResourcesPerNode = &corev1.ResourceRequirements{Limits: corev1.ResourceList{nvidia: q}}
		}), want: []string{"resources.limits[nvidia.com/gpu]", `vendor "nvidia" is not allowed`}},
		"a Secret outside allowedSecrets in spec.trainer.env": {obj: tj(func(j *trainer.TrainJob) { j.Spec.Trainer.Env = secretEnv("prod-db") }),
			want: []string{"env[0].valueFrom.secretKeyRef.name", "allowedSecrets"}},
		"a Secret outside allowedSecrets in the dataset initializer": {obj: tj(func(j *trainer.TrainJob) {
			j.Spec.Initializer = &trainer.Initializer{Dataset: &trainer.DatasetInitializer{SecretRef: &corev1.LocalObjectReference{Name: "prod-db"}}}
		}), want: []string{"spec.initializer.dataset.secretRef.name", "allowedSecrets"}},
		"a Secret outside allowedSecrets in the model initializer's env": {obj: tj(func(j *trainer.TrainJob) {
			j.Spec.Initializer = &trainer.Initializer{Model: &trainer.ModelInitializer{Env: secretEnv("prod-db")}}
		}), want: []string{"spec.initializer.model.env[0].valueFrom.secretKeyRef.name", "allowedSecrets"}},
		"a user's runtime patch with tolerations": {obj: tj(func(j *trainer.TrainJob) {
			j.Spec.RuntimePatches = []trainer.RuntimePatch{nodePatch("example.com/me", trainer.PodSpecPatch{Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}})}
		}), want: []string{"spec.runtimePatches[1].trainingRuntimeSpec", `manager "example.com/me"`}}, // [0] is Kaiwo's
		"a forged Kaiwo patch for the dataset initializer": {obj: tj(func(j *trainer.TrainJob) {
			p := nodePatch("kaiwo.silogen.ai/webhook", trainer.PodSpecPatch{Volumes: []corev1.Volume{{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}}})
			p.TrainingRuntimeSpec.Template.Spec.ReplicatedJobs[0].Name = "dataset-initializer"
			j.Spec.RuntimePatches = []trainer.RuntimePatch{p}
		}), want: []string{"spec.runtimePatches[0].trainingRuntimeSpec", "is Kaiwo's"}},
		"a forged Kaiwo patch with a toleration": {obj: tj(func(j *trainer.TrainJob) {
			j.Spec.RuntimePatches = []trainer.RuntimePatch{nodePatch("kaiwo.silogen.ai/webhook", trainer.PodSpecPatch{Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}})}
		}), want: []string{"tolerations are locked"}},
		"a forged Kueue patch with a toleration": {obj: tj(func(j *trainer.TrainJob) {
			j.Spec.RuntimePatches = []trainer.RuntimePatch{nodePatch("kueue.x-k8s.io/manager", trainer.PodSpecPatch{Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}})}
		}), want: []string{"spec.runtimePatches[1].trainingRuntimeSpec", "is Kueue's"}},
		"a policy patch a TrainJob cannot carry": {obj: tj(func(*trainer.TrainJob) {}),
			pol: teamMLWith(t, "metadata: {annotations: {team: ml}}", "spec: {priorityClassName: high}"), want: []string{"spec.trainer: Forbidden", "priorityClassName"}},
		"allowed: 4 nodes of 8 GPUs": {obj: tj(func(j *trainer.TrainJob) { j.Spec.Trainer.NumNodes = ptr.To[int32](4) })},
		"allowed: Kueue's empty patch on CREATE": {obj: tj(func(j *trainer.TrainJob) {
			j.Spec.RuntimePatches = []trainer.RuntimePatch{{Manager: "kueue.x-k8s.io/manager"}}
		})},
		"allowed: an allowed Secret in the trainer": {obj: tj(func(j *trainer.TrainJob) { j.Spec.Trainer.Env = secretEnv("hf-token") })},
	}
	runCreateAttacks(t, cases, pol)
}

// TestTrainJobUpdates: growth through numNodes or resourcesPerNode is held to the limit; a runtime patch a
// team user adds or changes later is denied; Kueue's controller filling its patch passes.
func TestTrainJobUpdates(t *testing.T) {
	pol := teamML(t)
	stored, err := admit(t, annotate(makeTrainJob(1, ""), annotations.GPUs, "16"), pol)
	if err != nil {
		t.Fatal(err)
	}
	withKueue := stored.DeepCopyObject().(*trainer.TrainJob)
	withKueue.Spec.RuntimePatches = append(withKueue.Spec.RuntimePatches, trainer.RuntimePatch{Manager: "kueue.x-k8s.io/manager"})
	kueueFilled := withKueue.DeepCopy()
	kueueFilled.Spec.RuntimePatches[1] = nodePatch("kueue.x-k8s.io/manager", trainer.PodSpecPatch{NodeSelector: map[string]string{"flavor": "mi300x"}})
	const kueueSA = "system:serviceaccount:kueue-system:kueue-controller-manager"
	cases := map[string]struct {
		old  client.Object
		edit func(j *trainer.TrainJob)
		as   string
		want []string
	}{
		"numNodes grown": {edit: func(j *trainer.TrainJob) { j.Spec.Trainer.NumNodes = ptr.To[int32](5) },
			want: []string{"40 GPUs", "maxGpusPerWorkload (32)"}},
		"GPUs per node grown": {edit: func(j *trainer.TrainJob) {
			j.Spec.Trainer.ResourcesPerNode.Limits[amd], j.Spec.Trainer.ResourcesPerNode.Requests[amd] = resource.MustParse("40"), resource.MustParse("40")
		}, want: []string{"80 GPUs", "maxGpusPerWorkload (32)"}},
		"a user's runtime patch added": {edit: func(j *trainer.TrainJob) {
			j.Spec.RuntimePatches = append(j.Spec.RuntimePatches, nodePatch("example.com/me", trainer.PodSpecPatch{NodeSelector: map[string]string{"a": "b"}}))
		}, want: []string{"spec.runtimePatches[1].trainingRuntimeSpec", `manager "example.com/me"`}},
		"Kueue's patch filled by a team user": {old: withKueue, edit: func(j *trainer.TrainJob) { j.Spec.RuntimePatches[1] = kueueFilled.Spec.RuntimePatches[1] },
			want: []string{"spec.runtimePatches[1].trainingRuntimeSpec", "is Kueue's"}},
		"allowed: Kueue's patch filled by Kueue": {old: withKueue, as: kueueSA, edit: func(j *trainer.TrainJob) { j.Spec.RuntimePatches[1] = kueueFilled.Spec.RuntimePatches[1] }},
		"allowed: numNodes shrunk":               {edit: func(j *trainer.TrainJob) { j.Spec.Trainer.NumNodes = ptr.To[int32](1) }},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			old := stored
			if tc.old != nil {
				old = tc.old
			}
			obj := old.DeepCopyObject().(*trainer.TrainJob)
			tc.edit(obj)
			err := validateAs(obj, old, pol, tc.as)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("want allowed, got %v", err)
				}
				return
			}
			wantDenied(t, err, tc.want...)
		})
	}
}

// TestTrainJobForgedKaiwoPatch: a runtime patch under Kaiwo's manager that holds more than the view reads
// is denied by the validating webhook; the mutation rewrites it to what the view holds.
func TestTrainJobForgedKaiwoPatch(t *testing.T) {
	pol := teamML(t)
	forged := makeTrainJob(2, "8")
	forged.Spec.RuntimePatches = []trainer.RuntimePatch{nodePatch("kaiwo.silogen.ai/webhook", trainer.PodSpecPatch{
		Containers: []trainer.ContainerPatch{{Name: "sidecar", Env: []corev1.EnvVar{{Name: "X", Value: "1"}}}}})}
	final := forged.DeepCopy() // as another webhook might leave it, with the user label
	final.Labels = map[string]string{annotations.User: mutate.LabelSafe(user)}
	wantDenied(t, validate(final, nil, pol), "spec.runtimePatches[0].trainingRuntimeSpec", "is Kaiwo's")
	out, err := admit(t, forged, pol)
	if err != nil {
		t.Fatalf("the mutation should rewrite Kaiwo's patch: %v", err)
	}
	for _, c := range out.(*trainer.TrainJob).Spec.RuntimePatches[0].TrainingRuntimeSpec.Template.Spec.ReplicatedJobs[0].Template.Spec.Template.Spec.Containers {
		if c.Name != "node" {
			t.Errorf("the forged container %q survived the mutation", c.Name)
		}
	}
}
