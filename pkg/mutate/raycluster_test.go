package mutate_test

import (
	"testing"

	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	. "github.com/silogen/kaiwo-webhook/internal/testobj"
	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// The controllers' users: service accounts of their own namespaces.
const (
	kubeRayOperator  = "system:serviceaccount:ray-system:kuberay-operator"
	jobSetController = "system:serviceaccount:jobset-system:jobset-controller-manager"
)

// TestRayClusterPlannedAndQueued: a standalone RayCluster is planned as a RayJob's cluster is (all GPUs
// on one worker when they fit a node, else the largest divisor that fits), and queued through spec.suspend
// with the autoscaler off, as Kueue's raycluster integration requires.
func TestRayClusterPlannedAndQueued(t *testing.T) {
	in := MakeRayCluster("c", "ml", "gpu").Annotate(annotations.GPUs, "24").Obj()
	out, _ := run(t, in, policy.Default())
	c := out.(*rayv1.RayCluster)
	g := c.Spec.WorkerGroupSpecs[0]
	if ptr.Deref(g.Replicas, 0) != 3 || ptr.Deref(g.MinReplicas, 0) != 3 || ptr.Deref(g.MaxReplicas, 0) != 3 {
		t.Errorf("worker group = %d (min %d, max %d) replicas, want 3 (min=max)", ptr.Deref(g.Replicas, 0), ptr.Deref(g.MinReplicas, 0), ptr.Deref(g.MaxReplicas, 0))
	}
	wantGPUs(t, g.Template.Spec.Containers[0], amd, 8, "", "")
	noGPUs(t, c.Spec.HeadGroupSpec.Template.Spec.Containers[0])
	if env := envOf(g.Template.Spec.Containers[0]); env[mutate.EnvNumGPUs] != "24" || env[mutate.EnvNumReplicas] != "3" || env[mutate.EnvNumGPUsPerReplica] != "8" {
		t.Errorf("worker env = %v, want NUM_GPUS=24, NUM_REPLICAS=3, NUM_GPUS_PER_REPLICA=8", env)
	}
	if !ptr.Deref(c.Spec.Suspend, false) || ptr.Deref(c.Spec.EnableInTreeAutoscaling, true) {
		t.Errorf("suspend = %v, enableInTreeAutoscaling = %v; want true, false", c.Spec.Suspend, c.Spec.EnableInTreeAutoscaling)
	}
	if q := c.Labels[annotations.KueueQueueName]; q != "kaiwo" {
		t.Errorf("queue label = %q, want kaiwo", q)
	}
	again, warnings := run(t, c, policy.Default())
	if len(warnings) > 0 || !apiequality.Semantic.DeepEqual(again, c) {
		t.Errorf("a second pass changed the cluster or warned: %v", warnings)
	}
}

// TestRayClusterKueueRules: what Kueue refuses of a queued RayCluster is denied with the reason, on
// CREATE and on an UPDATE of the stored cluster; an unqueued cluster may autoscale.
func TestRayClusterKueueRules(t *testing.T) {
	pol := teamML(t)
	eight := func() *RayClusterWrapper {
		return MakeRayCluster("c", "ml", "a", "b", "c", "d", "e", "f", "g", "h")
	}
	runCreateAttacks(t, map[string]createAttack{
		"autoscaling on a queued cluster": {obj: func() client.Object {
			return MakeRayCluster("c", "ml", "w").Workers(0, 1, amd, "8").Autoscaling(true).Obj()
		}, want: []string{"spec.enableInTreeAutoscaling", "queued RayCluster", "Kueue", "forbids the autoscaler"}},
		"autoscaling in OptIn with queueing none": {pol: policy.Default(), obj: func() client.Object {
			return MakeRayCluster("c", "ml", "w").Workers(0, 1, amd, "8").Autoscaling(true).Annotate(annotations.Queueing, "none").Obj()
		}},
		"eight worker groups": {obj: func() client.Object { return eight().Workers(7, 1, amd, "8").Obj() },
			want: []string{"spec.workerGroupSpecs", "must have at most 7 items"}},
		"a worker group named head": {obj: func() client.Object { return MakeRayCluster("c", "ml", "head").Workers(0, 1, amd, "8").Obj() },
			want: []string{"spec.workerGroupSpecs[0].groupName", `"head"`, "Kueue"}},
	}, pol)

	stored, err := admit(t, MakeRayCluster("c", "ml", "w").Workers(0, 2, amd, "8").Obj(), pol)
	if err != nil {
		t.Fatal(err)
	}
	on := stored.DeepCopyObject().(*rayv1.RayCluster)
	on.Spec.EnableInTreeAutoscaling = ptr.To(true)
	on.Spec.WorkerGroupSpecs[0].MaxReplicas = ptr.To[int32](2)
	wantDenied(t, validate(on, stored, pol), "spec.enableInTreeAutoscaling", "queued RayCluster")
}

// TestRayClusterEnforced: every worker group, the head and init containers count toward the GPU limit, on
// CREATE and when an UPDATE grows the workers.
func TestRayClusterEnforced(t *testing.T) {
	pol := teamML(t)
	runCreateAttacks(t, map[string]createAttack{
		"GPUs in a second worker group": {obj: func() client.Object {
			return MakeRayCluster("c", "ml", "a", "b").Workers(0, 2, amd, "8").Workers(1, 3, amd, "8").Obj()
		}, want: []string{"40 GPUs", "spec.workerGroupSpecs[1]", "maxGpusPerWorkload (32)"}},
		"GPUs on an init container of the head": {obj: func() client.Object {
			c := MakeRayCluster("c", "ml", "w").Workers(0, 4, amd, "8").Obj()
			c.Spec.HeadGroupSpec.Template.Spec.InitContainers = []corev1.Container{{Name: "warm", Image: "x",
				Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{amd: resource.MustParse("8")}}}}
			return c
		}, want: []string{"40 GPUs", "spec.headGroupSpec.template", "maxGpusPerWorkload (32)"}},
		"a nvidia worker where vendors are amd": {obj: func() client.Object {
			return MakeRayCluster("c", "ml", "w").Workers(0, 1, nvidia, "1").Obj()
		}, want: []string{"nvidia", "allowedVendors"}},
	}, pol)

	stored, err := admit(t, MakeRayCluster("c", "ml", "w").Workers(0, 2, amd, "8").Obj(), pol)
	if err != nil {
		t.Fatal(err)
	}
	grown := stored.DeepCopyObject().(*rayv1.RayCluster)
	grown.Spec.WorkerGroupSpecs[0].Replicas = ptr.To[int32](5)
	grown.Spec.WorkerGroupSpecs[0].MaxReplicas = ptr.To[int32](5)
	wantDenied(t, validate(grown, stored, pol), "spec.workerGroupSpecs[0].replicas=5", "maxGpusPerWorkload")
	shrunk := stored.DeepCopyObject().(*rayv1.RayCluster)
	shrunk.Spec.WorkerGroupSpecs[0].Replicas = ptr.To[int32](1)
	if err := validate(shrunk, stored, pol); err != nil {
		t.Errorf("shrinking the workers: %v", err)
	}
}

// TestRayClusterOfARayJob: a RayCluster a RayJob or RayService controls is a part of it: the mutation
// leaves it alone whatever it carries (KubeRay copies the RayJob's annotations), KubeRay creates it, and a
// team user who writes the owner reference by hand gets no GPUs.
func TestRayClusterOfARayJob(t *testing.T) {
	pol := teamML(t)
	for _, owner := range []string{"RayJob", "RayService"} {
		c := MakeRayCluster("c", "ml", "w").Workers(0, 2, amd, "8").Annotate(annotations.GPUs, "16").OwnedBy("ray.io/v1", owner).Obj()
		out, err := mutateIn(mutate.Input{Object: c, Policy: pol, User: kubeRayOperator})
		if err != nil || out.Managed || !apiequality.Semantic.DeepEqual(out.Object, c) {
			t.Errorf("%s's cluster: mutated (managed=%v, err=%v)", owner, out != nil && out.Managed, err)
		}
		if err := validateAs(c, nil, pol, kubeRayOperator); err != nil {
			t.Errorf("%s's cluster created by KubeRay: %v", owner, err)
		}
		wantDenied(t, validate(c, nil, pol), "is a part of a ray.io/v1 "+owner, "exempts it only when a controller makes the request")
	}
}
