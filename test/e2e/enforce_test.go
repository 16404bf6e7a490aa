package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	kueue "sigs.k8s.io/kueue/apis/kueue/v1beta2"

	"github.com/silogen/kaiwo-webhook/api/v1alpha1"
	. "github.com/silogen/kaiwo-webhook/internal/testobj"
	"github.com/silogen/kaiwo-webhook/pkg/annotations"
)

// Scenario: under a policy with allowedQueues [team-ml, team-ml-low], a Job waiting in team-ml
// (its ClusterQueue has no GPUs) cannot be moved to the LocalQueue "other", whose ClusterQueue has
// GPUs free, although Kueue itself lets a suspended Job's queue label change; moving it to
// team-ml-low is allowed and Kueue follows.
func TestQueuedJobCannotLeaveTheAllowedQueues(t *testing.T) {
	ns := "e2e-enforce"
	clusterQueue(t, "cq-enforce-empty", 0)
	clusterQueue(t, "cq-enforce-other", 16)
	mustCreate(t, &v1alpha1.KaiwoPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-enforce"},
		Spec: v1alpha1.KaiwoPolicySpec{
			Priority:          10,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{annotations.Team: ns}},
			Mode:              v1alpha1.ModeEnforce,
			Defaults:          &v1alpha1.PolicyDefaults{Queue: "team-ml", GPUVendor: "amd", GPUsPerNode: ptr.To[int32](8)},
			Limits: &v1alpha1.PolicyLimits{MaxGPUsPerWorkload: ptr.To[int32](32),
				AllowedQueues: []string{"team-ml", "team-ml-low"}},
		},
	})
	namespace(t, ns, map[string]string{annotations.Team: ns})
	for q, cq := range map[string]string{"team-ml": "cq-enforce-empty", "team-ml-low": "cq-enforce-empty", "other": "cq-enforce-other"} {
		localQueue(t, ns, q, cq)
	}
	var j *batchv1.Job
	eventually(t, "Job queued in team-ml under the policy", func() error {
		j = MakeJob(fmt.Sprintf("train-%d", time.Now().UnixNano()%100000), ns).Annotate(annotations.GPUs, "8").Obj()
		if err := k8s.Create(bg, j); err != nil {
			return err
		}
		if q := j.Labels[annotations.KueueQueueName]; q != "team-ml" {
			return fmt.Errorf("queue label %q", q)
		}
		return nil
	})
	eventually(t, "Workload of the Job in team-ml, pending", func() error {
		wl, err := workloadFor(ns, "Job", j.Name)
		if err != nil {
			return err
		}
		if wl.Spec.QueueName != "team-ml" || admitted(wl) == nil {
			return fmt.Errorf("queue %q admitted %v", wl.Spec.QueueName, admitted(wl) == nil)
		}
		return nil
	})

	move := func(queue string) error {
		get(t, j)
		patch := client.MergeFrom(j.DeepCopy())
		j.Labels[annotations.KueueQueueName] = queue
		return k8s.Patch(bg, j, patch)
	}
	err := move("other")
	if err == nil || !strings.Contains(err.Error(), "other") || !strings.Contains(err.Error(), "team-ml-low") {
		t.Fatalf("moving the Job to queue other: want a denial naming the queue and the allowed ones, got %v", err)
	}
	consistently(t, "the Job stays in team-ml, unadmitted", 3*time.Second, func() error {
		get(t, j)
		wl, err := workloadFor(ns, "Job", j.Name)
		if err != nil {
			return err
		}
		if q := j.Labels[annotations.KueueQueueName]; q != "team-ml" || wl.Spec.QueueName != "team-ml" || !ptr.Deref(j.Spec.Suspend, false) {
			return fmt.Errorf("label %q, workload queue %q, suspend %v", q, wl.Spec.QueueName, j.Spec.Suspend)
		}
		return nil
	})

	if err := move("team-ml-low"); err != nil {
		t.Fatalf("moving the Job to team-ml-low (allowed): %v", err)
	}
	eventually(t, "Kueue follows the allowed move", func() error {
		wl, err := workloadFor(ns, "Job", j.Name)
		if err != nil {
			return err
		}
		if wl.Spec.QueueName != kueue.LocalQueueName("team-ml-low") {
			return fmt.Errorf("workload queue %q", wl.Spec.QueueName)
		}
		return nil
	})
}
