package mutate_test

import (
	"encoding/json"
	"testing"

	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	. "github.com/silogen/kaiwo-webhook/internal/testobj"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// controlledBy is a controller owner reference.
func controlledBy(apiVersion, kind string) []metav1.OwnerReference {
	return []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: "o", UID: "u", Controller: ptr.To(true)}}
}

// rayJobCluster is the RayCluster a RayJob's controller creates from a checked RayJob: one worker group of
// 1 x 8 GPUs, with team-ml's locked tolerations and nodeSelector.
func rayJobCluster() *rayv1.RayCluster {
	spec := MakeRayJob("r", "ml", "w").Obj().Spec.RayClusterSpec
	rayWorkers(spec, 0, 1, amd, "8")
	for _, ps := range []*corev1.PodSpec{&spec.HeadGroupSpec.Template.Spec, &spec.WorkerGroupSpecs[0].Template.Spec} {
		ps.Tolerations = []corev1.Toleration{{Key: "amd.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
		ps.NodeSelector = map[string]string{"node-pool": "gpu"}
	}
	return &rayv1.RayCluster{TypeMeta: metav1.TypeMeta{APIVersion: "ray.io/v1", Kind: "RayCluster"},
		ObjectMeta: metav1.ObjectMeta{Name: "r-raycluster", Namespace: "ml", OwnerReferences: controlledBy("ray.io/v1", "RayJob")}, Spec: *spec}
}

// deploymentReplicaSet is the ReplicaSet a Deployment's controller creates: 2 pods of 8 GPUs.
func deploymentReplicaSet() *appsv1.ReplicaSet {
	d := MakeDeployment("d", "ml").Resource(0, amd, "8").Obj()
	return &appsv1.ReplicaSet{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "ReplicaSet"},
		ObjectMeta: metav1.ObjectMeta{Name: "d-1", Namespace: "ml", OwnerReferences: controlledBy("apps/v1", "Deployment")},
		Spec:       appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](2), Template: d.Spec.Template}}
}

// TestEditsOfControlledObjects: a team user edits the RayCluster a RayJob controls, or a Deployment's
// ReplicaSet, for more GPUs or around a lock; the controllers' own updates pass.
func TestEditsOfControlledObjects(t *testing.T) {
	pol := teamML(t)
	const (
		kuberay    = "system:serviceaccount:ray-system:kuberay-operator"
		deployCtrl = "system:serviceaccount:kube-system:deployment-controller"
		kcm        = "system:kube-controller-manager"
		autoscaler = "system:serviceaccount:ml:r-raycluster-autoscaler"
	)
	type cluster = rayv1.RayCluster
	worker := func(c *cluster) *corev1.PodSpec { return &c.Spec.WorkerGroupSpecs[0].Template.Spec }
	clusterCases := map[string]struct {
		old  func() *cluster
		edit func(c *cluster)
		as   string
		pol  *policy.Policy
		want []string // nil: allowed
	}{
		"workers grown from 1 to 5": {edit: func(c *cluster) { c.Spec.WorkerGroupSpecs[0].Replicas = ptr.To[int32](5) },
			want: []string{"spec: Invalid value: 40", "spec.workerGroupSpecs[0].replicas=5", "maxGpusPerWorkload (32)"}},
		"minReplicas raised to 5": {edit: func(c *cluster) { c.Spec.WorkerGroupSpecs[0].MinReplicas = ptr.To[int32](5) },
			want: []string{"spec.workerGroupSpecs[0].minReplicas=5", "maxGpusPerWorkload (32)"}},
		"the autoscaler turned on with maxReplicas 100": {edit: func(c *cluster) {
			c.Spec.EnableInTreeAutoscaling = ptr.To(true)
			c.Spec.WorkerGroupSpecs[0].MaxReplicas = ptr.To[int32](100)
		}, want: []string{"800 GPUs", "maxReplicas=100 with enableInTreeAutoscaling"}},
		"the autoscaler turned on without maxReplicas, with numOfHosts 4": {edit: func(c *cluster) {
			c.Spec.EnableInTreeAutoscaling = ptr.To(true)
			c.Spec.WorkerGroupSpecs[0].NumOfHosts = 4
		}, want: []string{"68719476704 GPUs", "maxReplicas=2147483647 with enableInTreeAutoscaling", "numOfHosts=4"}},
		"numOfHosts raised": {edit: func(c *cluster) { c.Spec.WorkerGroupSpecs[0].NumOfHosts = 8 },
			want: []string{"64 GPUs", "numOfHosts=8"}},
		"GPUs per worker raised to 40": {edit: func(c *cluster) { Resources(&c.Spec.WorkerGroupSpecs[0].Template, 0, amd, "40") },
			want: []string{"40 GPUs"}},
		"a second worker group added": {edit: func(c *cluster) {
			g := c.Spec.WorkerGroupSpecs[0]
			g.GroupName, g.Replicas = "more", ptr.To[int32](4)
			c.Spec.WorkerGroupSpecs = append(c.Spec.WorkerGroupSpecs, *g.DeepCopy())
		}, want: []string{"40 GPUs", "workerGroupSpecs[1]"}},
		"NVIDIA GPUs swapped in": {edit: func(c *cluster) {
			delete(worker(c).Containers[0].Resources.Limits, amd)
			delete(worker(c).Containers[0].Resources.Requests, amd)
			Resources(&c.Spec.WorkerGroupSpecs[0].Template, 0, nvidia, "8")
		}, want: []string{"spec.workerGroupSpecs[0].template.spec.containers[0].resources.limits[nvidia.com/gpu]", `vendor "nvidia" is not allowed`}},
		"a toleration beyond the locked ones": {edit: func(c *cluster) {
			worker(c).Tolerations = append(worker(c).Tolerations, corev1.Toleration{Operator: corev1.TolerationOpExists})
		}, want: []string{"spec.workerGroupSpecs[0].template.spec.tolerations[1]", "tolerations are locked"}},
		"the locked nodeSelector changed": {edit: func(c *cluster) { worker(c).NodeSelector["node-pool"] = "cpu" },
			want: []string{"spec.workerGroupSpecs[0].template.spec.nodeSelector[node-pool]", `"cpu"`, "locked"}},
		"a Secret outside allowedSecrets": {edit: func(c *cluster) {
			worker(c).Volumes = append(worker(c).Volumes, corev1.Volume{Name: "db", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "prod-db"}}})
		}, want: []string{"spec.workerGroupSpecs[0].template.spec.volumes[0].secret.secretName", `"prod-db"`, "allowedSecrets"}},
		"the owner reference dropped": {edit: func(c *cluster) { c.OwnerReferences = nil },
			want: []string{"ray.io/v1 RayCluster", "Enforce"}},
		"an owner reference added to a user's own cluster": {old: func() *cluster {
			c := rayJobCluster()
			c.OwnerReferences = nil
			Resources(&c.Spec.WorkerGroupSpecs[0].Template, 0, amd, "0")
			return c
		}, edit: func(c *cluster) {
			c.OwnerReferences = controlledBy("ray.io/v1", "RayJob")
			Resources(&c.Spec.WorkerGroupSpecs[0].Template, 0, amd, "32")
		}, want: []string{"ray.io/v1 RayCluster", "exempts it only when a controller makes the request"}},
		"a service account of the team's namespace grows it": {as: autoscaler, edit: func(c *cluster) { c.Spec.WorkerGroupSpecs[0].Replicas = ptr.To[int32](5) },
			want: []string{"40 GPUs"}},
		"allowed: the garbage collector orphans it": {as: "system:serviceaccount:kube-system:generic-garbage-collector", edit: func(c *cluster) { c.OwnerReferences = nil }},
		"allowed: KubeRay's operator updates it":    {as: kuberay, edit: func(c *cluster) { c.Spec.WorkerGroupSpecs[0].Replicas = ptr.To[int32](5) }},
		"allowed: workers shrunk":                   {edit: func(c *cluster) { c.Spec.WorkerGroupSpecs[0].Replicas = ptr.To[int32](0) }},
		"allowed: an env var added to a worker":     {edit: func(c *cluster) { worker(c).Containers[0].Env = []corev1.EnvVar{{Name: "X", Value: "1"}} }},
		"allowed: the autoscaler scales within maxReplicas": {as: autoscaler,
			old: func() *cluster {
				c := rayJobCluster()
				c.Spec.EnableInTreeAutoscaling = ptr.To(true)
				c.Spec.WorkerGroupSpecs[0].MaxReplicas = ptr.To[int32](4)
				return c
			}, edit: func(c *cluster) { c.Spec.WorkerGroupSpecs[0].Replicas = ptr.To[int32](4) }},
		"allowed: growth in OptIn": {pol: policy.Default(), edit: func(c *cluster) { c.Spec.WorkerGroupSpecs[0].Replicas = ptr.To[int32](50) }},
		"allowed: deleted": {edit: func(c *cluster) {
			c.DeletionTimestamp = &metav1.Time{}
			c.Spec.WorkerGroupSpecs[0].Replicas = ptr.To[int32](50)
		}},
	}
	for name, tc := range clusterCases {
		t.Run("RayCluster/"+name, func(t *testing.T) {
			old := rayJobCluster()
			if tc.old != nil {
				old = tc.old()
			}
			obj := old.DeepCopy()
			tc.edit(obj)
			checkControlled(t, obj, old, tc.pol, pol, tc.as, tc.want)
		})
	}
	rsCases := map[string]struct {
		edit func(r *appsv1.ReplicaSet)
		as   string
		want []string
	}{
		"replicas grown to 5": {edit: func(r *appsv1.ReplicaSet) { r.Spec.Replicas = ptr.To[int32](5) },
			want: []string{"40 GPUs", "spec.replicas=5", "maxGpusPerWorkload (32)"}},
		"allowed: the Deployment controller scales it":             {as: deployCtrl, edit: func(r *appsv1.ReplicaSet) { r.Spec.Replicas = ptr.To[int32](5) }},
		"allowed: the controller manager's own identity scales it": {as: kcm, edit: func(r *appsv1.ReplicaSet) { r.Spec.Replicas = ptr.To[int32](5) }},
	}
	for name, tc := range rsCases {
		t.Run("ReplicaSet/"+name, func(t *testing.T) {
			old := deploymentReplicaSet()
			obj := old.DeepCopy()
			tc.edit(obj)
			checkControlled(t, obj, old, nil, pol, tc.as, tc.want)
		})
	}
}

func checkControlled(t *testing.T, obj, old any, p, def *policy.Policy, as string, want []string) {
	t.Helper()
	if p == nil {
		p = def
	}
	if as == "" {
		as = user
	}
	raw, _ := json.Marshal(obj)
	oldRaw, _ := json.Marshal(old)
	err := kinds.ValidateUnhandledUpdate(raw, oldRaw, p, as)
	if want == nil {
		if err != nil {
			t.Fatalf("want allowed, got %v", err)
		}
		return
	}
	wantDenied(t, err, want...)
}
