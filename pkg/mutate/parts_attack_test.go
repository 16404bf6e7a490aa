package mutate_test

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	. "github.com/silogen/kaiwo-webhook/internal/testobj"
	"github.com/silogen/kaiwo-webhook/pkg/annotations"
)

// TestPartsMadeByHand: a team user in an Enforce namespace who writes a part's controller owner reference
// by hand (a StatefulSet "of" their own Pod, as a LeaderWorkerSet's leader Pod owns its group's workers)
// is denied even with no GPUs: otherwise the part, never checked as its workload, could grow later into
// GPUs in a queue the policy locks, held only to the rules of controlled objects. A part its controller
// made may still be edited by a team user within the limits, but not moved to another queue.
func TestPartsMadeByHand(t *testing.T) {
	pol := teamML(t)
	part := func(gpus string, replicas int32, queue string) *appsv1.StatefulSet {
		d := MakeDeployment("d", "ml").Replicas(replicas)
		if gpus != "" {
			d = d.Resource(0, amd, gpus)
		}
		s := statefulSetOf(d.Obj())
		if queue != "" {
			s.Labels = map[string]string{annotations.KueueQueueName: queue}
		}
		s.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: "leader", UID: "u", Controller: ptr.To(true)}}
		return s
	}
	const lwsController = "system:serviceaccount:lws-system:lws-controller-manager"

	// Made by hand, no GPUs yet, in a queue the policy does not allow: denied at create.
	wantDenied(t, validate(part("", 1, "other-team"), nil, pol), "metadata.ownerReferences", "is a part of a v1 Pod", "asks for no GPUs", "create the v1 Pod instead")
	// A plain StatefulSet's owner reference added by a team user's UPDATE: denied, GPUs or not.
	plain := part("", 1, "")
	plain.OwnerReferences = nil
	wantDenied(t, validate(part("", 1, ""), plain, pol), "metadata.ownerReferences", "is a part of a v1 Pod")

	// Made by the controller: it passes; a team user's edit is held to the limits and the queues.
	made := part("8", 2, "team-ml")
	if err := validateAs(made, nil, pol, lwsController); err != nil {
		t.Fatalf("the controller's part: %v", err)
	}
	wantDenied(t, validate(part("8", 5, "team-ml"), made, pol), "maxGpusPerWorkload")
	wantDenied(t, validate(part("8", 2, "other-team"), made, pol), "metadata.labels[kueue.x-k8s.io/queue-name]", "other-team")
	relabeled := part("8", 2, "team-ml")
	relabeled.Spec.Template.Labels = map[string]string{annotations.KueueQueueName: "other-team"}
	wantDenied(t, validate(relabeled, made, pol), "kueue.x-k8s.io/queue-name", "other-team")
	if err := validate(part("8", 1, "team-ml"), made, pol); err != nil {
		t.Errorf("a team user's part that shrinks: %v", err)
	}
}

// TestOwnedPodEdits: a Pod a workload's controller made cannot ask for more GPUs after create, but a team
// user can add tolerations to a pending one; under locked tolerations that is denied, as on a bare Pod. The
// controllers' own updates pass.
func TestOwnedPodEdits(t *testing.T) {
	pol := teamML(t)
	made, err := admit(t, podOf(gpuJob("8").Obj()), pol)
	if err != nil {
		t.Fatal(err)
	}
	pod := made.(*corev1.Pod)
	pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", UID: "u", Controller: ptr.To(true)}}
	tolerant := pod.DeepCopy()
	tolerant.Spec.Tolerations = append(tolerant.Spec.Tolerations, corev1.Toleration{Operator: corev1.TolerationOpExists})
	wantDenied(t, validate(tolerant, pod, pol), "tolerations")
	if err := validateAs(tolerant, pod, pol, "system:serviceaccount:kube-system:replicaset-controller"); err != nil {
		t.Errorf("a controller's update of its Pod: %v", err)
	}
	relabeled := pod.DeepCopy()
	relabeled.Labels["team"] = "a"
	if err := validate(relabeled, pod, pol); err != nil {
		t.Errorf("a team user's label on an owned Pod: %v", err)
	}
}
