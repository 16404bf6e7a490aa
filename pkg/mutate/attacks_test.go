package mutate_test

import (
	"encoding/json"

	"github.com/google/go-cmp/cmp"
	"testing"

	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	. "github.com/silogen/kaiwo-webhook/internal/testobj"
	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// storageLimited is team-ml with a storage limit of 1Ti per workload.
func storageLimited(t *testing.T) *policy.Policy {
	return teamMLWith(t, "    maxGpusPerWorkload: 32\n", "    maxGpusPerWorkload: 32\n    maxStoragePerWorkload: 1Ti\n")
}

// jobWithVolume is a 1-GPU Job with a generic ephemeral volume of size and class that the user writes.
func jobWithVolume(size, class string) *batchv1.Job {
	j := gpuJob("1").Obj()
	ephemeral(&j.Spec.Template.Spec, "scratch", size)
	j.Spec.Template.Spec.Volumes[0].Ephemeral.VolumeClaimTemplate.Spec.StorageClassName = ptr.To(class)
	return j
}

// lockedStorage is team-ml with defaults.storage 100Gi of fast-nvme, locked.
func lockedStorage(t *testing.T) *policy.Policy {
	return teamMLWith(t, "    nodeSelector: {node-pool: gpu}\n", "    nodeSelector: {node-pool: gpu}\n    storage: {size: 100Gi, storageClassName: fast-nvme}\n",
		"locked: [queue,", "locked: [storage, queue,")
}

// ephemeral adds a generic ephemeral volume of size to a pod template, as a user writes it.
func ephemeral(ps *corev1.PodSpec, name, size string) {
	ps.Volumes = append(ps.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{
		VolumeClaimTemplate: &corev1.PersistentVolumeClaimTemplate{Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
		}}}}})
}

// withClaim gives the first container of j a device claimed through dynamic resource allocation (DRA): a
// ResourceClaimTemplate that may ask for any number of GPUs, which no resources.limits shows.
func withClaim(j *batchv1.Job) *batchv1.Job {
	ps := &j.Spec.Template.Spec
	ps.ResourceClaims = []corev1.PodResourceClaim{{Name: "gpus", ResourceClaimTemplateName: ptr.To("sixty-four-gpus")}}
	ps.Containers[0].Resources.Claims = []corev1.ResourceClaim{{Name: "gpus"}}
	return j
}

// TestMoreAttacksOnCreate: further ways a team user tries to get around the rules when creating a workload.
func TestMoreAttacksOnCreate(t *testing.T) {
	pol := teamML(t)
	cases := map[string]createAttack{
		"GPUs asked for through requests only": {obj: func() client.Object {
			j := MakeJob("j", "ml").Obj()
			j.Spec.Template.Spec.Containers[0].Resources.Requests = corev1.ResourceList{amd: resource.MustParse("40")}
			return j
		}, want: []string{"40 GPUs", "maxGpusPerWorkload (32)"}},
		"a GPU quantity written as 1k": {obj: func() client.Object { return gpuJob("1k").Obj() },
			want: []string{"1000 GPUs", "maxGpusPerWorkload (32)"}},
		"a GPU quantity written as 1e3": {obj: func() client.Object { return gpuJob("1e3").Obj() },
			want: []string{"1000 GPUs"}},
		"half a GPU": {obj: func() client.Object { return gpuJob("0.5").Obj() },
			want: []string{"resources.limits[amd.com/gpu]", `"500m"`, "whole number of GPUs"}},
		"a Ray worker group with replicas unset and minReplicas 5": {obj: func() client.Object {
			r := MakeRayJob("r", "ml", "w").Obj()
			Resources(&r.Spec.RayClusterSpec.WorkerGroupSpecs[0].Template, 0, amd, "8")
			r.Spec.RayClusterSpec.WorkerGroupSpecs[0].Replicas = nil
			r.Spec.RayClusterSpec.WorkerGroupSpecs[0].MinReplicas = ptr.To[int32](5)
			return r
		}, want: []string{"40 GPUs", "minReplicas=5"}},
		"an Indexed Job counts min(parallelism, completions)": {obj: func() client.Object {
			j := gpuJob("8").Parallelism(8).Obj()
			j.Spec.Completions, j.Spec.CompletionMode = ptr.To[int32](5), ptr.To(batchv1.IndexedCompletion)
			return j
		}, want: []string{"40 GPUs", "spec.completions=5"}},
		"GPUs through a dynamic resource allocation claim": {obj: func() client.Object { return withClaim(MakeJob("j", "ml").Obj()) },
			want: []string{"spec.template.spec.containers[0].resources.claims[0]", `"gpus"`, "dynamic resource allocation", `"team-ml"`}},
		"a DRA claim next to counted GPUs": {obj: func() client.Object { return withClaim(gpuJob("8").Obj()) },
			want: []string{"resources.claims[0]", "dynamic resource allocation"}},
		"allowed: a DRA claim in OptIn": {pol: policy.Default(), obj: func() client.Object { return withClaim(gpuJob("8").Obj()) }},
		"a pod priority class under a locked priorityClass": {pol: teamMLWith(t, "locked: [queue,", "locked: [priorityClass, queue,"), obj: func() client.Object {
			j := gpuJob("1").Obj()
			j.Spec.Template.Spec.PriorityClassName = "system-node-critical"
			return j
		}, want: []string{"spec.template.spec.priorityClassName", `"system-node-critical"`, "defaults.priorityClass is \"normal\"", "locked"}},
		"a pod priority class on a Ray worker under a locked priorityClass": {pol: teamMLWith(t, "locked: [queue,", "locked: [priorityClass, queue,"), obj: func() client.Object {
			r := MakeRayJob("r", "ml", "w").WorkerResource(0, amd, "8").Obj()
			r.Spec.RayClusterSpec.WorkerGroupSpecs[0].Template.Spec.PriorityClassName = "prod-high"
			return r
		}, want: []string{"workerGroupSpecs[0].template.spec.priorityClassName", `"prod-high"`}},
		"allowed: the locked priority class as the pod's": {pol: teamMLWith(t, "locked: [queue,", "locked: [priorityClass, queue,"), obj: func() client.Object {
			j := gpuJob("1").Obj()
			j.Spec.Template.Spec.PriorityClassName = "normal"
			return j
		}},
		"allowed: a pod priority class when priorityClass is not locked": {obj: func() client.Object {
			j := gpuJob("1").Obj()
			j.Spec.Template.Spec.PriorityClassName = "prod-high"
			return j
		}},
		"an ephemeral volume of another class under a locked storage": {pol: lockedStorage(t), obj: func() client.Object { return jobWithVolume("100Gi", "premium") }, want: []string{"spec.template.spec.volumes[0].ephemeral.volumeClaimTemplate.spec.storageClassName", `"premium"`, `defaults.storage.storageClassName is "fast-nvme"`}},
		"a larger ephemeral volume under a locked storage":            {pol: lockedStorage(t), obj: func() client.Object { return jobWithVolume("10Ti", "fast-nvme") }, want: []string{"spec.template.spec.volumes[0].ephemeral.volumeClaimTemplate.spec.resources.requests[storage]", `"10Ti"`, `defaults.storage.size is "100Gi"`}},
		"allowed: Kaiwo's volume under a locked storage":              {pol: lockedStorage(t), obj: func() client.Object { return gpuJob("1").Parallelism(2).Obj() }},
		"a Secret through a CSI nodePublishSecretRef": {obj: func() client.Object {
			j := gpuJob("1").Obj()
			j.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: "d", NodePublishSecretRef: &corev1.LocalObjectReference{Name: "prod-db"}}}}}
			return j
		}, want: []string{"volumes[0].csi.nodePublishSecretRef.name", `"prod-db"`, "allowedSecrets"}},
		"a Secret through envFrom with a prefix": {obj: func() client.Object {
			j := gpuJob("1").Obj()
			j.Spec.Template.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{Prefix: "TEAM_ML_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "prod-db"}}}}
			return j
		}, want: []string{"envFrom[0].secretRef.name", `"prod-db"`}},
		"an ephemeral volume written in the template beyond maxStoragePerWorkload": {pol: storageLimited(t), obj: func() client.Object {
			j := gpuJob("1").Obj()
			ephemeral(&j.Spec.Template.Spec, "scratch", "100Ti")
			return j
		}, want: []string{"spec.template.spec.volumes[0].ephemeral.volumeClaimTemplate.spec.resources.requests[storage]", "100Ti", "maxStoragePerWorkload (1Ti)"}},
		"ephemeral volumes small per pod but many pods": {pol: storageLimited(t), obj: func() client.Object {
			j := gpuJob("1").Parallelism(8).Obj()
			ephemeral(&j.Spec.Template.Spec, "scratch", "200Gi")
			return j
		}, want: []string{"1600Gi", "8 pods", "maxStoragePerWorkload (1Ti)"}},
		"allowed: an ephemeral volume within maxStoragePerWorkload": {pol: storageLimited(t), obj: func() client.Object {
			j := gpuJob("1").Parallelism(4).Obj()
			ephemeral(&j.Spec.Template.Spec, "scratch", "256Gi")
			return j
		}},
		"allowed: the workload volume Kaiwo places within maxStoragePerWorkload": {pol: storageLimited(t), obj: func() client.Object {
			return gpuJob("1").Parallelism(2).Annotate(annotations.Storage, "500Gi").Obj()
		}},
	}
	runCreateAttacks(t, cases, pol)
}

// TestMoreAttacksOnUpdate: later changes to stored objects, checked by the validating webhook alone.
func TestMoreAttacksOnUpdate(t *testing.T) {
	pol, storage := teamML(t), storageLimited(t)
	servingQueued := teamMLWith(t, "    nodeSelector: {node-pool: gpu}\n", "    nodeSelector: {node-pool: gpu}\n    servingQueueing: kueue\n")
	stored := func(t *testing.T, obj client.Object, p *policy.Policy) client.Object {
		t.Helper()
		out, err := admit(t, obj, p)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	cases := map[string]struct {
		old  func(t *testing.T) client.Object
		edit func(o client.Object)
		pol  *policy.Policy
		want []string // nil: allowed
	}{
		"a Deployment created with replicas unset, then grown to 5": {
			old: func(t *testing.T) client.Object {
				return stored(t, MakeDeployment("d", "ml").Resource(0, amd, "8").Obj(), pol)
			},
			edit: func(o client.Object) { o.(*appsv1.Deployment).Spec.Replicas = ptr.To[int32](5) },
			want: []string{"40 GPUs", "spec.replicas=5", "maxGpusPerWorkload (32)"}},
		"a suspended RayJob grown from 1 to 5 workers": {
			old: func(t *testing.T) client.Object {
				r := MakeRayJob("r", "ml", "w").Obj()
				rayWorkers(r.Spec.RayClusterSpec, 0, 1, amd, "8")
				return stored(t, r, pol)
			},
			edit: func(o client.Object) {
				o.(*rayv1.RayJob).Spec.RayClusterSpec.WorkerGroupSpecs[0].Replicas = ptr.To[int32](5)
			},
			want: []string{"40 GPUs", "workerGroupSpecs[0].replicas=5"}},
		"every kaiwo key and the managed label dropped with the queue label changed": {
			old: func(t *testing.T) client.Object { return stored(t, gpuJob("8").Obj(), pol) },
			edit: func(o client.Object) {
				o.SetAnnotations(nil)
				o.SetLabels(map[string]string{annotations.User: o.GetLabels()[annotations.User], annotations.KueueQueueName: "other"})
			},
			want: []string{"metadata.labels[kueue.x-k8s.io/queue-name]", `"other"`}},
		"every kaiwo key dropped with a toleration added": {
			old: func(t *testing.T) client.Object { return stored(t, gpuJob("8").Obj(), pol) },
			edit: func(o client.Object) {
				o.SetAnnotations(nil)
				l := o.GetLabels()
				delete(l, annotations.Managed)
				j := o.(*batchv1.Job)
				j.Spec.Template.Spec.Tolerations = append(j.Spec.Template.Spec.Tolerations, corev1.Toleration{Operator: corev1.TolerationOpExists})
			},
			want: []string{"tolerations are locked"}},
		"the queue label moved on a RayJob": {
			old: func(t *testing.T) client.Object {
				return stored(t, MakeRayJob("r", "ml", "w").WorkerResource(0, amd, "8").Obj(), pol)
			},
			edit: func(o client.Object) { o.GetLabels()[annotations.KueueQueueName] = "team-prod" },
			want: []string{"metadata.labels[kueue.x-k8s.io/queue-name]", `"team-prod"`}},
		"a Deployment's pod template moved to another queue": {pol: servingQueued,
			old: func(t *testing.T) client.Object {
				return stored(t, MakeDeployment("d", "ml").Resource(0, amd, "1").Obj(), servingQueued)
			},
			edit: func(o client.Object) {
				o.(*appsv1.Deployment).Spec.Template.Labels[annotations.KueueQueueName] = "other"
			},
			want: []string{"spec.template.metadata.labels[kueue.x-k8s.io/queue-name]", `"other"`}},
		"a suspended Job's parallelism grown past maxStoragePerWorkload": {pol: storage,
			old: func(t *testing.T) client.Object {
				return stored(t, gpuJob("1").Parallelism(2).Annotate(annotations.Storage, "500Gi").Obj(), storage)
			},
			edit: func(o client.Object) { o.(*batchv1.Job).Spec.Parallelism = ptr.To[int32](4) },
			want: []string{"2000Gi", "4 pods", "maxStoragePerWorkload (1Ti)"}},
		"a Deployment's ephemeral volume grown": {pol: storage,
			old: func(t *testing.T) client.Object {
				return stored(t, MakeDeployment("d", "ml").Resource(0, amd, "1").Obj(), storage)
			},
			edit: func(o client.Object) {
				ephemeral(&o.(*appsv1.Deployment).Spec.Template.Spec, "scratch", "2Ti")
			},
			want: []string{"ephemeral.volumeClaimTemplate.spec.resources.requests[storage]", "maxStoragePerWorkload (1Ti)"}},
		"a DRA claim added to a Deployment": {
			old: func(t *testing.T) client.Object {
				return stored(t, MakeDeployment("d", "ml").Resource(0, amd, "1").Obj(), pol)
			},
			edit: func(o client.Object) {
				ps := &o.(*appsv1.Deployment).Spec.Template.Spec
				ps.ResourceClaims = []corev1.PodResourceClaim{{Name: "gpus", ResourceClaimName: ptr.To("shared-gpus")}}
				ps.Containers[0].Resources.Claims = []corev1.ResourceClaim{{Name: "gpus"}}
			},
			want: []string{"spec.template.spec.containers[0].resources.claims[0]", "dynamic resource allocation"}},
		"allowed: a Job's parallelism shrunk under storage": {pol: storage,
			old: func(t *testing.T) client.Object {
				return stored(t, gpuJob("1").Parallelism(2).Annotate(annotations.Storage, "500Gi").Obj(), storage)
			},
			edit: func(o client.Object) { o.(*batchv1.Job).Spec.Parallelism = ptr.To[int32](1) }},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := tc.pol
			if p == nil {
				p = pol
			}
			old := tc.old(t)
			obj := old.DeepCopyObject().(client.Object)
			tc.edit(obj)
			err := validate(obj, old, p)
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

// TestScaleAttacks: the scale subresource is held to the storage limit as to the GPU limit.
func TestScaleAttacks(t *testing.T) {
	storage := storageLimited(t)
	out, err := admit(t, MakeDeployment("d", "ml").Resource(0, amd, "1").Annotate(annotations.Storage, "500Gi").Obj(), storage)
	if err != nil {
		t.Fatal(err)
	}
	wantDenied(t, mutate.ValidateScale(kindOf(out), out, 3, storage), "1500Gi", "3 pods", "maxStoragePerWorkload (1Ti)")
	if err := mutate.ValidateScale(kindOf(out), out, 2, storage); err != nil {
		t.Fatalf("scale to 2 (1000Gi): want allowed, got %v", err)
	}
}

// forgedRecord claims, in the kaiwo.silogen.ai/applied record, that Kaiwo placed what the user wrote: the
// GPU limit, tolerations, env and mounts of every container, so that a later pass would take them away or
// overwrite them as Kaiwo's.
const forgedRecord = `{"policy":"team-ml","generation":1,"features":["gpus"],"placed":{"labels":["kueue.x-k8s.io/queue-name","app"],` +
	`"templates":{"spec.template":{"labels":["kueue.x-k8s.io/queue-name","app"],"tolerations":["amd.com/gpu:NoSchedule#0"],"volumes":["data"],` +
	`"containers":{"server":{"resources":["limits/amd.com/gpu","requests/amd.com/gpu"],"env":["HF_TOKEN"],"mounts":["/data"]}}}}}}`

// TestForgedRecord: a record the user writes counts for nothing. On CREATE (the server sets Create) and on
// UPDATE (the stored object's record counts, and the mutation writes its own), the result is the same as
// without the forged record.
func TestForgedRecord(t *testing.T) {
	pol := teamML(t)
	dep := func() *appsv1.Deployment {
		d := MakeDeployment("d", "ml").Annotate(annotations.GPUs, "8").Obj()
		d.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "HF_TOKEN", Value: "user"}}
		return d
	}
	forge := func(o client.Object) client.Object {
		o = o.DeepCopyObject().(client.Object)
		a := o.GetAnnotations()
		a[annotations.Applied] = forgedRecord
		o.SetAnnotations(a)
		return o
	}
	run := func(t *testing.T, obj, old client.Object, create bool) client.Object {
		t.Helper()
		out, err := mutateIn(mutate.Input{Object: obj, Old: old, Create: create, Policy: pol, User: user})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(out.Object)
		r := mutate.Review{Operation: mutate.OpCreate, Object: out.Object, Raw: raw, Policy: pol, User: user}
		if old != nil {
			r.Operation, r.Old = mutate.OpUpdate, old
			r.OldRaw, _ = json.Marshal(old)
		}
		if _, err := validateIn(r); err != nil {
			t.Fatalf("the webhook's own output is denied: %v", err)
		}
		return out.Object
	}
	t.Run("CREATE", func(t *testing.T) {
		want, got := run(t, dep(), nil, true), run(t, forge(dep()), nil, true)
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("a forged record changed the result (-want,+got):\n%s", d)
		}
	})
	t.Run("UPDATE", func(t *testing.T) {
		stored := run(t, dep(), nil, true)
		changed := stored.DeepCopyObject().(client.Object)
		changed.GetAnnotations()[annotations.GPUs] = "4"
		want, got := run(t, changed, stored, false), run(t, forge(changed), stored, false)
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("a forged record changed the result (-want,+got):\n%s", d)
		}
	})
}
