package mutate_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	. "github.com/silogen/kaiwo-webhook/internal/testobj"
	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// TestAttacksOnUpdate: later changes to a stored object, each as kubectl would send them.
func TestAttacksOnUpdate(t *testing.T) {
	pol := teamML(t)
	stored, err := admit(t, gpuJob("8").Parallelism(4).Obj(), pol)
	if err != nil {
		t.Fatal(err)
	}
	old := stored.(*batchv1.Job)
	const kueue = "system:serviceaccount:kueue-system:kueue-controller-manager"
	cases := map[string]struct {
		edit func(j *batchv1.Job)
		want []string // nil: allowed
	}{
		"3 kubectl label queue-name=other --overwrite": {func(j *batchv1.Job) { j.Labels[annotations.KueueQueueName] = "other" },
			[]string{"metadata.labels[kueue.x-k8s.io/queue-name]", `"other"`, "locked"}},
		"3 queue label removed": {func(j *batchv1.Job) { delete(j.Labels, annotations.KueueQueueName) },
			[]string{"kueue.x-k8s.io/queue-name", "Required"}},
		"3 parallelism grown past the limit while suspended": {func(j *batchv1.Job) { j.Spec.Parallelism = ptr.To[int32](5) },
			[]string{"40 GPUs", "spec.parallelism=5", "maxGpusPerWorkload (32)"}},
		"3 a sidecar with GPUs added while suspended": {func(j *batchv1.Job) { withInit(j, true, amd, "1") },
			[]string{"36 GPUs"}},
		"4 user label changed": {func(j *batchv1.Job) { j.Labels[annotations.User] = "bob" },
			[]string{"metadata.labels[kaiwo.silogen.ai/user]", `"bob"`, "immutable", `"alice-example.com"`}},
		"4 user label removed": {func(j *batchv1.Job) { delete(j.Labels, annotations.User) },
			[]string{"metadata.labels[kaiwo.silogen.ai/user]", "cannot be changed or removed"}},
		"5 a toleration added while suspended": {func(j *batchv1.Job) {
			j.Spec.Template.Spec.Tolerations = append(j.Spec.Template.Spec.Tolerations, corev1.Toleration{Operator: corev1.TolerationOpExists})
		}, []string{"spec.template.spec.tolerations[1]", "tolerations are locked"}},
		"5 a Secret added while suspended": {func(j *batchv1.Job) {
			j.Spec.Template.Spec.Volumes = append(j.Spec.Template.Spec.Volumes, corev1.Volume{Name: "db", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "prod-db"}}})
		}, []string{"secret.secretName", `"prod-db"`}},
		"queueing none added later": {func(j *batchv1.Job) { j.Annotations[annotations.Queueing] = "none" },
			[]string{"kaiwo.silogen.ai/queueing"}},
		"allowed: parallelism shrunk": {func(j *batchv1.Job) { j.Spec.Parallelism = ptr.To[int32](2) }, nil},
		"allowed: an unrelated label": {func(j *batchv1.Job) { j.Labels["app"] = "x" }, nil},
		"allowed: Kueue starts it with its flavor's toleration and nodeSelector": {func(j *batchv1.Job) {
			j.Spec.Suspend = ptr.To(false)
			j.Spec.Template.Spec.Tolerations = append(j.Spec.Template.Spec.Tolerations, corev1.Toleration{Key: "flavor", Operator: corev1.TolerationOpExists})
			j.Spec.Template.Spec.NodeSelector["flavor"] = "mi300x"
		}, nil},
		"5 the user unsuspends it with a toleration, as Kueue would": {func(j *batchv1.Job) {
			j.Spec.Suspend = ptr.To(false)
			j.Spec.Template.Spec.Tolerations = append(j.Spec.Template.Spec.Tolerations, corev1.Toleration{Operator: corev1.TolerationOpExists})
		}, []string{"spec.template.spec.tolerations[1]", "tolerations are locked"}},
		"5 a service account of the team's namespace unsuspends it with a toleration": {func(j *batchv1.Job) {
			j.Spec.Suspend = ptr.To(false)
			j.Spec.Template.Spec.Tolerations = append(j.Spec.Template.Spec.Tolerations, corev1.Toleration{Operator: corev1.TolerationOpExists})
		}, []string{"tolerations are locked"}},
		"allowed: finalizer removal while deleted": {func(j *batchv1.Job) {
			j.DeletionTimestamp = &metav1.Time{}
			j.Labels[annotations.User] = "bob"
		}, nil},
	}
	// The requesting users other than alice.
	users := map[string]string{
		"allowed: Kueue starts it with its flavor's toleration and nodeSelector":      kueue,
		"5 a service account of the team's namespace unsuspends it with a toleration": "system:serviceaccount:ml:kueue-controller-manager",
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			j := old.DeepCopy()
			tc.edit(j)
			err := validateAs(j, old, pol, users[name])
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

// TestUpdateUnderATightenedPolicy: an object over a limit set later is not locked against changes that do
// not grow it.
func TestUpdateUnderATightenedPolicy(t *testing.T) {
	loose := teamMLWith(t, "maxGpusPerWorkload: 32", "maxGpusPerWorkload: 64")
	stored, err := admit(t, gpuJob("8").Parallelism(6).Obj(), loose)
	if err != nil {
		t.Fatal(err)
	}
	old := stored.(*batchv1.Job)
	j := old.DeepCopy()
	j.Labels["app"] = "x"
	if err := validate(j, old, teamML(t)); err != nil {
		t.Errorf("unchanged 48 GPUs refused: %v", err)
	}
	j.Spec.Parallelism = ptr.To[int32](7)
	wantDenied(t, validate(j, old, teamML(t)), "56 GPUs")
}

// TestServingUpdateKeepsTheRecord: a serving kind is mutated again on UPDATE; the user label stays the
// creator's, a dropped one is put back, a changed one is refused by the mutation already.
func TestServingUpdateKeepsTheRecord(t *testing.T) {
	pol := teamML(t)
	stored, err := admit(t, MakeDeployment("d", "ml").Resource(0, amd, "8").Obj(), pol)
	if err != nil {
		t.Fatal(err)
	}
	d := stored.DeepCopyObject().(*appsv1.Deployment)
	delete(d.Labels, annotations.User)
	out, err := mutateIn(mutate.Input{Object: d, Old: stored, Policy: pol, User: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if got := out.Object.GetLabels()[annotations.User]; got != "alice-example.com" {
		t.Errorf("user label after bob's update = %q, want alice-example.com", got)
	}
	d.Labels[annotations.User] = "bob"
	_, err = mutateIn(mutate.Input{Object: d, Old: stored, Policy: pol, User: "bob"})
	wantDenied(t, err, "metadata.labels[kaiwo.silogen.ai/user]", "immutable")
}

// TestValidateScale: kubectl scale and an HPA go through the scale subresource.
func TestValidateScale(t *testing.T) {
	pol := teamML(t)
	stored, err := admit(t, MakeDeployment("d", "ml").Resource(0, amd, "8").Replicas(2).Obj(), pol)
	if err != nil {
		t.Fatal(err)
	}
	wantDenied(t, mutate.ValidateScale(kindOf(stored), stored, 100, pol), "800 GPUs", "spec.replicas=100", "maxGpusPerWorkload (32)")
	wantDenied(t, mutate.ValidateScale(kindOf(stored), stored, 5, pol), "40 GPUs")
	for _, n := range []int32{0, 1, 4} {
		if err := mutate.ValidateScale(kindOf(stored), stored, n, pol); err != nil {
			t.Errorf("scale to %d: %v", n, err)
		}
	}
	plain := MakeDeployment("d", "ml").Resource(0, amd, "8").Obj()
	if err := mutate.ValidateScale(kindOf(plain), plain, 100, policy.Default()); err != nil {
		t.Errorf("an unmanaged Deployment in an OptIn namespace: %v", err)
	}
}

// TestTieIsVisible: two policies of equal priority that select one namespace: admission warns naming
// both, and the queue one of them locks is the one the object must use, whatever the names.
func TestTieIsVisible(t *testing.T) {
	open := strings.NewReplacer("name: team-ml\n", "name: aaa-open\n", "  mode: Enforce\n", "", "queue: team-ml\n", "queue: anything\n",
		"allowedQueues: [team-ml, team-ml-low]", "allowedQueues: [anything, team-ml]", "  locked: [queue, tolerations, nodeSelector]\n", "").Replace(teamMLPolicy(t))
	pol := fzCompileAny(t, teamMLPolicy(t)+"---\n"+open)
	if pol.Defaults.Queue != "team-ml" {
		t.Fatalf("effective queue %q, want the locked team-ml", pol.Defaults.Queue)
	}
	obj, err := admit(t, gpuJob("8").Obj(), pol)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(obj)
	warnings, err := validateIn(mutate.Review{Operation: mutate.OpCreate, Object: obj, Raw: raw, Policy: pol, User: user})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(warnings, func(w string) bool {
		return strings.Contains(w, `"aaa-open" and "team-ml" have the same priority 10`)
	}) {
		t.Errorf("no warning naming both policies: %q", warnings)
	}
	if got := obj.GetLabels()[annotations.KueueQueueName]; got != "team-ml" {
		t.Errorf("queue label %q, want team-ml", got)
	}
}

// TestMoreUpdates: Ray worker groups, a Deployment that gains GPUs, and the queue label of pods.
func TestMoreUpdates(t *testing.T) {
	pol := teamML(t)
	r := MakeRayJob("r", "ml", "w").Obj()
	rayWorkers(r.Spec.RayClusterSpec, 0, 2, amd, "8")
	stored, err := admit(t, r, pol)
	if err != nil {
		t.Fatal(err)
	}
	old := stored.(*rayv1.RayJob)
	grown := old.DeepCopy()
	grown.Spec.RayClusterSpec.WorkerGroupSpecs[0].Replicas = ptr.To[int32](5)
	wantDenied(t, validate(grown, old, pol), "40 GPUs", "workerGroupSpecs[0].replicas=5")
	added := old.DeepCopy()
	added.Spec.RayClusterSpec.WorkerGroupSpecs = append(added.Spec.RayClusterSpec.WorkerGroupSpecs, *added.Spec.RayClusterSpec.WorkerGroupSpecs[0].DeepCopy())
	added.Spec.RayClusterSpec.WorkerGroupSpecs[1].GroupName = "more"
	added.Spec.RayClusterSpec.WorkerGroupSpecs[1].Replicas = ptr.To[int32](3)
	wantDenied(t, validate(added, old, pol), "40 GPUs", "workerGroupSpecs[1].replicas=3")
	if err := validate(added, old, teamMLWith(t, "maxGpusPerWorkload: 32", "maxGpusPerWorkload: 40")); err != nil {
		t.Errorf("a second group within the limit: %v", err)
	}

	// A Deployment without GPUs is not managed; an UPDATE that adds 64 is, and is refused by both webhooks.
	plain, err := admit(t, MakeDeployment("d", "ml").Obj(), pol)
	if err != nil {
		t.Fatal(err)
	}
	gpus := plain.DeepCopyObject().(*appsv1.Deployment)
	Resources(&gpus.Spec.Template, 0, amd, "64")
	_, err = mutateIn(mutate.Input{Object: gpus, Old: plain, Policy: pol, User: user})
	wantDenied(t, err, "64 GPUs", "maxGpusPerWorkload (32)")
	// Without the mutation (another path to the API server), the missing locked defaults are refused first.
	wantDenied(t, validate(gpus, plain, pol), "spec.template.spec.tolerations", "spec.template.spec.nodeSelector[node-pool]")

	// The pods of a queued Deployment are queued by their own label.
	served := teamMLWith(t, "    nodeSelector: {node-pool: gpu}\n", "    nodeSelector: {node-pool: gpu}\n    servingQueueing: kueue\n")
	dep, err := admit(t, MakeDeployment("d", "ml").Resource(0, amd, "8").Obj(), served)
	if err != nil {
		t.Fatal(err)
	}
	moved := dep.DeepCopyObject().(*appsv1.Deployment)
	moved.Spec.Template.Labels[annotations.KueueQueueName] = "team-ml-low"
	wantDenied(t, validate(moved, dep, served), "spec.template.metadata.labels[kueue.x-k8s.io/queue-name]", `"team-ml-low"`)
	lockedPC := teamMLWith(t, "    nodeSelector: {node-pool: gpu}\n", "    nodeSelector: {node-pool: gpu}\n    servingQueueing: kueue\n", "locked: [queue,", "locked: [priorityClass, queue,")
	dep, err = admit(t, MakeDeployment("d", "ml").Resource(0, amd, "8").Obj(), lockedPC)
	if err != nil {
		t.Fatal(err)
	}
	urgent := dep.DeepCopyObject().(*appsv1.Deployment)
	urgent.Spec.Template.Labels[annotations.KueuePriorityClass] = "urgent"
	wantDenied(t, validate(urgent, dep, lockedPC), "spec.template.metadata.labels[kueue.x-k8s.io/priority-class]", `"urgent"`, "locked")
}

// TestControllerUpdatesOfOlderObjects: a Deployment created before tolerations were locked keeps its extra
// toleration through updates that do not touch its template (the deployment controller's revision
// annotation); a change of the template is held to the lock, by the mutation and by Validate.
func TestControllerUpdatesOfOlderObjects(t *testing.T) {
	unlocked := teamMLWith(t, "locked: [queue, tolerations, nodeSelector]", "locked: [queue, nodeSelector]")
	d := MakeDeployment("d", "ml").Resource(0, amd, "8").Obj()
	d.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Key: "spot", Operator: corev1.TolerationOpExists}}
	stored, err := admit(t, d, unlocked)
	if err != nil {
		t.Fatal(err)
	}
	pol := teamML(t)
	annotated := stored.DeepCopyObject().(*appsv1.Deployment)
	annotated.Annotations["deployment.kubernetes.io/revision"] = "2"
	out, err := mutateIn(mutate.Input{Object: annotated, Old: stored, Policy: pol, User: "system:serviceaccount:kube-system:deployment-controller"})
	if err != nil {
		t.Fatalf("mutation refused the controller's update: %v", err)
	}
	if err := validate(out.Object, stored, pol); err != nil {
		t.Fatalf("Validate refused the controller's update: %v", err)
	}
	changed := annotated.DeepCopy()
	changed.Spec.Template.Spec.Containers[0].Image = "rocm/vllm:v2"
	_, err = mutateIn(mutate.Input{Object: changed, Old: stored, Policy: pol, User: user})
	wantDenied(t, err, "spec.template.spec.tolerations[0]", `key: "spot"`, "tolerations are locked")
	wantDenied(t, validate(changed, stored, pol), "spec.template.spec.tolerations[0]")
}

// TestReviewShapes: a DELETE passes, an UPDATE without the old object is an error (it cannot be checked),
// an old object of another kind is an error.
func TestReviewShapes(t *testing.T) {
	pol := teamML(t)
	j := gpuJob("8").Obj()
	if _, err := validateIn(mutate.Review{Operation: "DELETE", Object: j, Policy: pol, User: user}); err != nil {
		t.Errorf("DELETE: %v", err)
	}
	if _, err := validateIn(mutate.Review{Operation: mutate.OpUpdate, Object: j, Policy: pol, User: user}); err == nil {
		t.Error("an UPDATE without the old object was allowed")
	}
	if _, err := validateIn(mutate.Review{Operation: mutate.OpUpdate, Object: j, Old: MakeDeployment("d", "ml").Obj(), Policy: pol, User: user}); err == nil {
		t.Error("an UPDATE whose old object is another kind was allowed")
	}
}
