package mutate_test

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
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

// teamMLFile is the SPEC's team-ml policy.
const teamMLFile = "../policy/testdata/team-ml.yaml"

func teamMLPolicy(t testing.TB) string {
	b, err := os.ReadFile(teamMLFile)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func teamML(t testing.TB) *policy.Policy { return fzCompile(t, teamMLPolicy(t)) }

// teamMLWith is team-ml with its spec lines replaced: old -> new.
func teamMLWith(t testing.TB, oldNew ...string) *policy.Policy {
	doc := teamMLPolicy(t)
	for i := 0; i+1 < len(oldNew); i += 2 {
		if !strings.Contains(doc, oldNew[i]) {
			t.Fatalf("team-ml has no %q", oldNew[i])
		}
		doc = strings.Replace(doc, oldNew[i], oldNew[i+1], 1)
	}
	return fzCompile(t, doc)
}

const user = "alice@example.com"

// admit is what the API server does on CREATE: the mutating webhook, then the validating one on its output.
func admit(t *testing.T, obj client.Object, pol *policy.Policy) (client.Object, error) {
	t.Helper()
	out, err := mutateIn(mutate.Input{Object: obj, Policy: pol, User: user})
	if err != nil {
		return nil, err
	}
	raw, _ := json.Marshal(out.Object)
	_, err = validateIn(mutate.Review{Operation: mutate.OpCreate, Object: out.Object, Raw: raw, Policy: pol, User: user})
	return out.Object, err
}

// validate is the validating webhook alone on a final object (after another mutating webhook, say).
func validate(obj, old client.Object, pol *policy.Policy) error { return validateAs(obj, old, pol, "") }

// validateAs is validate for a requesting user other than alice ("" is alice).
func validateAs(obj, old client.Object, pol *policy.Policy, as string) error {
	raw, _ := json.Marshal(obj)
	if as == "" {
		as = user
	}
	r := mutate.Review{Operation: mutate.OpCreate, Object: obj, Raw: raw, Policy: pol, User: as}
	if old != nil {
		r.Operation, r.Old = mutate.OpUpdate, old
		r.OldRaw, _ = json.Marshal(old)
	}
	_, err := validateIn(r)
	return err
}

func wantDenied(t *testing.T, err error, want ...string) {
	t.Helper()
	var d *mutate.Denial
	if !errors.As(err, &d) {
		t.Fatalf("want a denial naming %q, got %v", want, err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("denial lacks %q:\n%v", w, err)
		}
	}
}

func gpuJob(n string) *JobWrapper { return MakeJob("j", "ml").Resource(0, amd, n) }

func withInit(j *batchv1.Job, sidecar bool, r corev1.ResourceName, q string) *batchv1.Job {
	c := corev1.Container{Name: "init", Image: "busybox", Resources: corev1.ResourceRequirements{
		Limits: corev1.ResourceList{r: resource.MustParse(q)}, Requests: corev1.ResourceList{r: resource.MustParse(q)}}}
	if sidecar {
		c.RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
	}
	j.Spec.Template.Spec.InitContainers = append(j.Spec.Template.Spec.InitContainers, c)
	return j
}

func rayWorkers(spec *rayv1.RayClusterSpec, g int, replicas int32, r corev1.ResourceName, q string) {
	spec.WorkerGroupSpecs[g].Replicas = ptr.To(replicas)
	Resources(&spec.WorkerGroupSpecs[g].Template, 0, r, q)
}

// TestAttacksOnCreate: each of issue 10's attacks, tried as a team user in a team-ml namespace would, is
// denied naming the field and the rule, by the mutation (early) or by the validator on the final object.
func TestAttacksOnCreate(t *testing.T) {
	pol := teamML(t)
	servingQueued := teamMLWith(t, "    nodeSelector: {node-pool: gpu}\n", "    nodeSelector: {node-pool: gpu}\n    servingQueueing: kueue\n")
	cases := map[string]createAttack{
		"1 queueing none on an 8-GPU Job": {obj: func() client.Object { return gpuJob("8").Annotate(annotations.Queueing, "none").Obj() },
			want: []string{"metadata.annotations[kaiwo.silogen.ai/queueing]", `"none"`, "Enforce", `"team-ml"`}},
		"1 queueing none on a RayJob": {obj: func() client.Object {
			return MakeRayJob("r", "ml", "w").WorkerResource(0, amd, "8").Annotate(annotations.Queueing, "none").Obj()
		}, want: []string{"kaiwo.silogen.ai/queueing", "Enforce"}},
		"1 queueing none on a Deployment under servingQueueing kueue": {pol: servingQueued, obj: func() client.Object {
			return MakeDeployment("d", "ml").Resource(0, amd, "8").Annotate(annotations.Queueing, "none").Obj()
		}, want: []string{"kaiwo.silogen.ai/queueing", "a Deployment runs in Kueue's queue"}},
		"2 nvidia GPUs in an init container": {obj: func() client.Object { return withInit(gpuJob("1").Obj(), false, nvidia, "64") },
			want: []string{"spec.template.spec.initContainers[0].resources.limits[nvidia.com/gpu]", `vendor "nvidia" is not allowed`}},
		"2 nvidia GPUs in a native sidecar": {obj: func() client.Object { return withInit(gpuJob("1").Obj(), true, nvidia, "64") },
			want: []string{"spec.template.spec.initContainers[0].resources.limits[nvidia.com/gpu]", "allowedVendors"}},
		"2 amd GPUs in a native sidecar count with the containers": {obj: func() client.Object { return withInit(gpuJob("8").Obj(), true, amd, "30") },
			want: []string{"spec: Invalid value: 38", "exceed limits.maxGpusPerWorkload (32)"}},
		"2 an init container larger than the containers counts": {obj: func() client.Object { return withInit(gpuJob("8").Obj(), false, amd, "40") },
			want: []string{"40 GPUs", "maxGpusPerWorkload (32)"}},
		"2 head plus two 32-GPU worker groups": {obj: func() client.Object {
			r := MakeRayJob("r", "ml", "a", "b").Obj()
			Resources(&r.Spec.RayClusterSpec.HeadGroupSpec.Template, 0, amd, "8")
			rayWorkers(r.Spec.RayClusterSpec, 0, 4, amd, "8")
			rayWorkers(r.Spec.RayClusterSpec, 1, 4, amd, "8")
			return r
		}, want: []string{"72 GPUs", "headGroupSpec", "workerGroupSpecs[1]", "maxGpusPerWorkload (32)"}},
		"2 a RayService autoscaled to maxReplicas 100": {obj: func() client.Object {
			r := MakeRayService("s", "ml", "w").Obj()
			rayWorkers(&r.Spec.RayClusterSpec, 0, 1, amd, "1")
			r.Spec.RayClusterSpec.EnableInTreeAutoscaling = ptr.To(true)
			r.Spec.RayClusterSpec.WorkerGroupSpecs[0].MaxReplicas = ptr.To[int32](100)
			return r
		}, want: []string{"100 GPUs", "maxReplicas=100 with enableInTreeAutoscaling"}},
		"2 numOfHosts multiplies a worker's GPUs": {obj: func() client.Object {
			r := MakeRayJob("r", "ml", "w").Obj()
			rayWorkers(r.Spec.RayClusterSpec, 0, 1, amd, "8")
			r.Spec.RayClusterSpec.WorkerGroupSpecs[0].NumOfHosts = 8
			return r
		}, want: []string{"64 GPUs", "numOfHosts=8"}},
		"2 GPUs on the RayJob submitter": {obj: func() client.Object {
			r := MakeRayJob("r", "ml", "w").Submitter().Obj()
			Resources(r.Spec.SubmitterPodTemplate, 0, amd, "33")
			return r
		}, want: []string{"33 GPUs", "spec.submitterPodTemplate"}},
		"2 parallelism times GPUs per pod": {obj: func() client.Object { return gpuJob("8").Parallelism(5).Obj() },
			want: []string{"40 GPUs", "spec.parallelism=5"}},
		"5 a Secret outside allowedSecrets in an env secretKeyRef": {obj: func() client.Object {
			j := gpuJob("1").Obj()
			j.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "DB", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "prod-db"}, Key: "pw"}}}}
			return j
		}, want: []string{"spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef.name", `"prod-db"`, "allowedSecrets"}},
		"5 a Secret in envFrom of an init container": {obj: func() client.Object {
			j := withInit(gpuJob("1").Obj(), false, amd, "0")
			j.Spec.Template.Spec.InitContainers[0].EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "prod-db"}}}}
			return j
		}, want: []string{"initContainers[0].envFrom[0].secretRef.name", `"prod-db"`}},
		"5 a secret volume": {obj: func() client.Object {
			j := gpuJob("1").Obj()
			j.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "db", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "prod-db"}}}}
			return j
		}, want: []string{"spec.template.spec.volumes[0].secret.secretName", `"prod-db"`}},
		"5 a projected volume's secret": {obj: func() client.Object {
			j := gpuJob("1").Obj()
			j.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "p", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "prod-db"}}}}}}}}
			return j
		}, want: []string{"volumes[0].projected.sources[0].secret.name", `"prod-db"`}},
		"5 an image pull secret other than the policy's": {obj: func() client.Object {
			j := gpuJob("1").Obj()
			j.Spec.Template.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "other-team-registry"}}
			return j
		}, want: []string{"imagePullSecrets[0].name", `"other-team-registry"`}},
		"5 a Secret on a Ray worker": {obj: func() client.Object {
			r := MakeRayJob("r", "ml", "w").WorkerResource(0, amd, "1").Obj()
			r.Spec.RayClusterSpec.WorkerGroupSpecs[0].Template.Spec.Volumes = []corev1.Volume{{Name: "db", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "prod-db"}}}}
			return r
		}, want: []string{"workerGroupSpecs[0].template.spec.volumes[0].secret.secretName", `"prod-db"`}},
		"5 a toleration beyond the locked ones": {obj: func() client.Object {
			j := gpuJob("1").Obj()
			j.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
			return j
		}, want: []string{"spec.template.spec.tolerations[0]", `operator: "Exists"`, "tolerations are locked"}},
		"5 a nodeSelector that differs from the locked one": {obj: func() client.Object {
			j := gpuJob("1").Obj()
			j.Spec.Template.Spec.NodeSelector = map[string]string{"node-pool": "cpu"}
			return j
		}, want: []string{"spec.template.spec.nodeSelector[node-pool]", `"cpu"`, "locked"}},
		"5 nvidia in the template under a locked gpuVendor": {pol: teamMLWith(t, "allowedVendors: [amd]", "allowedVendors: [amd, nvidia]", "locked: [queue,", "locked: [gpuVendor, queue,"),
			obj:  func() client.Object { return MakeJob("j", "ml").Resource(0, nvidia, "1").Obj() },
			want: []string{"resources.limits[nvidia.com/gpu]", `defaults.gpuVendor is "amd"`}},
		"2 NVIDIA MIG slices under allowedVendors [amd]": {obj: func() client.Object { return gpuJob("1").Resource(0, "nvidia.com/mig-3g.20gb", "2").Obj() },
			want: []string{"resources.limits[nvidia.com/mig-3g.20gb]", `vendor "nvidia" is not allowed`}},
		"2 time-sliced GPUs count": {pol: teamMLWith(t, "allowedVendors: [amd]", "allowedVendors: [amd, nvidia]"),
			obj:  func() client.Object { return MakeJob("j", "ml").Resource(0, "nvidia.com/gpu.shared", "40").Obj() },
			want: []string{"40 GPUs", "nvidia.com/gpu.shared"}},
		"allowed: an NVIDIA NIC is no GPU": {obj: func() client.Object { return gpuJob("8").Resource(0, "nvidia.com/rdma_shared_device_a", "1").Obj() }},
		"5 nodeName skips the locked scheduling fields": {obj: func() client.Object {
			j := gpuJob("1").Obj()
			j.Spec.Template.Spec.NodeName = "gpu-node-1"
			return j
		}, want: []string{"spec.template.spec.nodeName", "skips the scheduler"}},
		"7 gpus 2147483647": {obj: func() client.Object { return MakeJob("j", "ml").Annotate(annotations.GPUs, "2147483647").Obj() },
			want: []string{"metadata.annotations[kaiwo.silogen.ai/gpus]", "2147483647", "more than the 8 GPUs of a node"}},
		"7 GPUs x parallelism that wrap an int64": {obj: func() client.Object { return gpuJob("4611686018427387904").Parallelism(4).Obj() },
			want: []string{"spec.template.spec.containers", "4611686018427387904"}},
		"allowed: 4 pods of 8 GPUs": {obj: func() client.Object { return gpuJob("8").Parallelism(4).Obj() }},
		"allowed: 8 GPUs with a CPU-only init container and a sidecar": {obj: func() client.Object {
			return withInit(withInit(gpuJob("8").Obj(), false, corev1.ResourceCPU, "1"), true, corev1.ResourceCPU, "1")
		}},
	}
	runCreateAttacks(t, cases, pol)
}

// TestNumbersAtTheEdges: a GPU count no node holds is denied naming the annotation before any
// arithmetic, and CPU and memory per GPU are checked multiplications: a product that does not fit a
// quantity is denied, never wrapped (2147483647 x 32Gi once gave -32Gi, 536870913 x 32Gi gave 32Gi).
func TestNumbersAtTheEdges(t *testing.T) {
	for _, gpus := range []string{"2147483647", "536870913", "288230376151711744"} {
		t.Run(gpus, func(t *testing.T) {
			out, err := mutateIn(mutate.Input{Object: MakeJob("j", "ml").Annotate(annotations.GPUs, gpus).Obj(), User: user})
			if gpus == "288230376151711744" { // beyond int32: the annotation parser refuses it
				wantDenied(t, err, "kaiwo.silogen.ai/gpus")
				return
			}
			if err == nil {
				mem := out.Object.(*batchv1.Job).Spec.Template.Spec.Containers[0].Resources.Limits.Memory()
				t.Fatalf("admitted with memory %s", mem)
			}
			wantDenied(t, err, "metadata.annotations[kaiwo.silogen.ai/gpus]", gpus, "more than the 8 GPUs of a node")
		})
	}
	// The largest node a policy may name (1024 GPUs) with memory per GPU near the quantity's limit.
	big := policy.Default()
	big.Defaults.GPUsPerNode = 1024
	big.Defaults.MemoryPerGPU = policy.Canonical(resource.MustParse("6Ei"))
	_, err := mutateIn(mutate.Input{Object: MakeJob("j", "ml").Annotate(annotations.GPUs, "2").Obj(), Policy: big, User: user})
	wantDenied(t, err, "metadata.annotations[kaiwo.silogen.ai/gpus]", "do not fit")
	// 1024 GPUs x 2Pi = 2Ei fits: the quantity is exact.
	big.Defaults.MemoryPerGPU = policy.Canonical(resource.MustParse("2Pi"))
	out, err := mutateIn(mutate.Input{Object: MakeJob("j", "ml").Annotate(annotations.GPUs, "1024").Obj(), Policy: big, User: user})
	if err != nil {
		t.Fatal(err)
	}
	if got := out.Object.(*batchv1.Job).Spec.Template.Spec.Containers[0].Resources.Limits.Memory().String(); got != "2Ei" {
		t.Errorf("memory = %s, want 2Ei", got)
	}
}

// TestFinalObjectAttacks: what another mutating webhook, or a request that skipped ours, could leave in the
// final object is refused by Validate alone.
func TestFinalObjectAttacks(t *testing.T) {
	pol := teamML(t)
	good, err := admit(t, gpuJob("8").Obj(), pol)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		edit func(j *batchv1.Job)
		want []string
	}{
		"no queue label": {func(j *batchv1.Job) { delete(j.Labels, annotations.KueueQueueName) },
			[]string{"metadata.labels[kueue.x-k8s.io/queue-name]", "Required", "must be queued"}},
		"another queue": {func(j *batchv1.Job) { j.Labels[annotations.KueueQueueName] = "team-ml-low" },
			[]string{"metadata.labels[kueue.x-k8s.io/queue-name]", `"team-ml-low"`, "locked"}},
		"4 another user's record": {func(j *batchv1.Job) { j.Labels[annotations.User] = "bob" },
			[]string{"metadata.labels[kaiwo.silogen.ai/user]", `"bob"`, `"alice-example.com"`}},
		"toleration removed": {func(j *batchv1.Job) { j.Spec.Template.Spec.Tolerations = nil },
			[]string{"spec.template.spec.tolerations", "cannot be removed"}},
		"7 GPUs x parallelism that wrap an int64": {func(j *batchv1.Job) {
			j.Spec.Parallelism = ptr.To[int32](4)
			j.Spec.Template.Spec.Containers[0].Resources.Limits[amd] = resource.MustParse("4611686018427387904")
			j.Spec.Template.Spec.Containers[0].Resources.Requests[amd] = resource.MustParse("4611686018427387904")
		}, []string{"spec.template", "4 pods x 4611686018427387904 amd.com/gpu", "do not fit a 64-bit count"}},
		"a GPU quantity that does not fit": {func(j *batchv1.Job) {
			j.Spec.Template.Spec.Containers[0].Resources.Limits[amd] = resource.MustParse("1e30")
		}, []string{"spec.template.spec.containers[0].resources.limits[amd.com/gpu]", "whole number of GPUs"}},
		"GPUs in an init container": {func(j *batchv1.Job) {
			withInit(j, false, amd, "64")
		}, []string{"64 GPUs", "maxGpusPerWorkload"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			j := good.DeepCopyObject().(*batchv1.Job)
			tc.edit(j)
			wantDenied(t, validate(j, nil, pol), tc.want...)
		})
	}
	if err := validate(good, nil, pol); err != nil {
		t.Errorf("the webhook's own output is refused: %v", err)
	}
}

// TestUserLabelOnCreate: alice cannot record bob; the mutation overwrites what the object says.
func TestUserLabelOnCreate(t *testing.T) {
	obj, err := admit(t, gpuJob("1").Label(annotations.User, "bob").Obj(), teamML(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := obj.GetLabels()[annotations.User]; got != "alice-example.com" {
		t.Errorf("user label = %q, want alice-example.com", got)
	}
}

// fzCheckValidates: the validating webhook allows what the mutating webhook produced.
func fzCheckValidates(t *testing.T, out []byte, polFor func(string) *policy.Policy) {
	t.Helper()
	obj, _, err := kinds.Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := validateIn(mutate.Review{Operation: mutate.OpCreate, Object: obj, Raw: out, Policy: polFor(obj.GetNamespace()), User: rwUser}); err != nil {
		t.Fatalf("Validate refuses the mutation's own output: %v\n%s", err, out)
	}
}

// TestSecretVolumesPerSecret (issue 10, attack 9): db.prod and db-prod get a volume each, and each path
// mounts its own Secret; a name that is valid as it is keeps the plain volume name.
func TestSecretVolumesPerSecret(t *testing.T) {
	env := "envVars:\n- mountSecret: {name: A, secret: db.prod, key: k, path: /a}\n- mountSecret: {name: B, secret: db-prod, key: k, path: /b}\n"
	out, _ := run(t, job(annotations.Env, env).Obj(), nil)
	ps := out.(*batchv1.Job).Spec.Template.Spec
	secretOf := map[string]string{}
	for _, v := range ps.Volumes {
		if v.Secret != nil {
			secretOf[v.Name] = v.Secret.SecretName
		}
	}
	mounted := map[string]string{}
	for _, m := range ps.Containers[0].VolumeMounts {
		mounted[m.MountPath] = secretOf[m.Name]
	}
	if mounted["/a"] != "db.prod" || mounted["/b"] != "db-prod" {
		t.Errorf("/a mounts Secret %q, /b Secret %q; want db.prod and db-prod (volumes %v)", mounted["/a"], mounted["/b"], secretOf)
	}
	if secretOf["kaiwo-secret-db-prod"] != "db-prod" {
		t.Errorf("db-prod's volume is not kaiwo-secret-db-prod: %v", secretOf)
	}
}

// createAttack is one object a team user creates, under pol (nil: the table's policy), and the parts of
// the denial that must name the field and the rule (nil: admitted).
type createAttack struct {
	obj  func() client.Object
	pol  *policy.Policy
	want []string
}

// runCreateAttacks admits each case's object through the core as the server would and checks the answer.
func runCreateAttacks(t *testing.T, cases map[string]createAttack, pol *policy.Policy) {
	t.Helper()
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := tc.pol
			if p == nil {
				p = pol
			}
			_, err := admit(t, tc.obj(), p)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("want admitted, got %v", err)
				}
				return
			}
			wantDenied(t, err, tc.want...)
		})
	}
}
