package mutate_test

import (
	"fmt"
	"testing"

	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/typedpatch"
)

// TestRealWorldOperatorsAccept checks that the webhook never turns a RayJob or RayService that KubeRay
// and Kueue accept into one they reject: the admission call either denies, with a reason, or hands on
// an object that will run. The rules are KubeRay's and Kueue's own, restated (importing KubeRay's
// controllers/ray/utils would change go.mod).
func TestRealWorldOperatorsAccept(t *testing.T) {
	for _, name := range rwSortedCases() {
		tc := rwCases[name]
		if len(tc.denied) > 0 {
			continue
		}
		t.Run(name, func(t *testing.T) {
			raw := rwLoad(t, rwFile(name), tc.annotations)
			res, err := kinds.Admit(raw, rwPolicy, rwUser)
			if err != nil {
				return // a denial is always an acceptable answer here; TestRealWorld says which are expected
			}
			out, err := typedpatch.Apply(raw, res.Patch)
			if err != nil {
				t.Fatal(err)
			}
			was := map[string]bool{}
			for _, e := range rwOperatorErrors(rwDecodeObject(t, raw)) {
				was[e] = true
			}
			for _, e := range rwOperatorErrors(rwDecodeObject(t, out)) {
				if !was[e] {
					t.Errorf("the mutated object is rejected: %s", e)
				}
			}
		})
	}
}

// rwOperatorErrors restates the checks of KubeRay v1.6.0 (ray-operator/controllers/ray/utils/validation.go:
// ValidateRayJobSpec, validateDeletionConfiguration, ValidateRayClusterSpec) and, for queued objects,
// Kueue v0.17.0 (pkg/controller/jobs/rayjob/rayjob_webhook.go validateCreate, raycluster/common.go ValidateCreate)
// that depend on fields the webhook writes.
func rwOperatorErrors(obj client.Object) []string {
	var errs []string
	queued := obj.GetLabels()[annotations.KueueQueueName] != ""
	cluster := func(c *rayv1.RayClusterSpec) {
		if c == nil {
			return
		}
		autoscaling := ptr.Deref(c.EnableInTreeAutoscaling, false)
		for _, g := range c.WorkerGroupSpecs {
			if !autoscaling && (g.MinReplicas == nil || g.MaxReplicas == nil) {
				errs = append(errs, fmt.Sprintf("KubeRay: worker group %s must set both minReplicas and maxReplicas when autoscaling is disabled", g.GroupName))
			}
			if g.MinReplicas != nil && g.MaxReplicas != nil && *g.MinReplicas > *g.MaxReplicas {
				errs = append(errs, fmt.Sprintf("KubeRay: worker group %s has minReplicas greater than maxReplicas", g.GroupName))
			}
			if queued && g.GroupName == "head" {
				errs = append(errs, "Kueue: worker group name \"head\" is reserved for the head group")
			}
		}
		if queued && autoscaling {
			errs = append(errs, "Kueue: a kueue managed job should only use autoscaling when workload slicing is enabled")
		}
		if queued && len(c.WorkerGroupSpecs) > 7 {
			errs = append(errs, "Kueue: at most 7 worker groups")
		}
	}
	switch o := obj.(type) {
	case *rayv1.RayJob:
		s := &o.Spec
		if s.Suspend && !s.ShutdownAfterJobFinishes {
			errs = append(errs, "KubeRay: a RayJob with shutdownAfterJobFinishes set to false is not allowed to be suspended")
		}
		if s.TTLSecondsAfterFinished < 0 {
			errs = append(errs, "KubeRay: TTLSecondsAfterFinished must be a non-negative integer")
		}
		if !s.ShutdownAfterJobFinishes && s.TTLSecondsAfterFinished > 0 {
			errs = append(errs, "KubeRay: a RayJob with shutdownAfterJobFinishes set to false cannot have TTLSecondsAfterFinished")
		}
		if s.DeletionStrategy != nil && len(s.DeletionStrategy.DeletionRules) > 0 && s.ShutdownAfterJobFinishes {
			errs = append(errs, "KubeRay: spec.shutdownAfterJobFinishes and spec.deletionStrategy.deletionRules are mutually exclusive")
		}
		if s.Suspend && len(s.ClusterSelector) > 0 {
			errs = append(errs, "KubeRay: the ClusterSelector mode doesn't support the suspend operation")
		}
		if queued && !s.ShutdownAfterJobFinishes {
			errs = append(errs, "Kueue: a kueue managed job should delete the cluster after finishing")
		}
		cluster(s.RayClusterSpec)
	case *rayv1.RayService:
		cluster(&o.Spec.RayClusterSpec)
		if o.Spec.UpgradeStrategy != nil && ptr.Deref(o.Spec.UpgradeStrategy.Type, "") == rayv1.RayServiceNewClusterWithIncrementalUpgrade &&
			!ptr.Deref(o.Spec.RayClusterSpec.EnableInTreeAutoscaling, false) {
			errs = append(errs, "KubeRay: Ray Autoscaler is required for NewClusterWithIncrementalUpgrade")
		}
	}
	return errs
}
