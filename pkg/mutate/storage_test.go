package mutate_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/api/v1alpha1"
	. "github.com/silogen/kaiwo-webhook/internal/testobj"
	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

func storagePolicy(size, class string, locked bool, maxTotal string) *policy.Policy {
	p := policy.Default()
	p.Name = "ml"
	if size != "" {
		q := resource.MustParse(size)
		p.Defaults.StorageSize = &q
	}
	p.Defaults.StorageClass = class
	if locked {
		p.Locked = []string{policy.FieldStorage}
	}
	if maxTotal != "" {
		q := resource.MustParse(maxTotal)
		p.Limits.MaxStoragePerWorkload = &q
	}
	return p
}

func storageVolume(t *testing.T, ps corev1.PodSpec) *corev1.PersistentVolumeClaimSpec {
	t.Helper()
	for _, v := range ps.Volumes {
		if v.Name == "kaiwo-storage" && v.Ephemeral != nil && v.Ephemeral.VolumeClaimTemplate != nil {
			return &v.Ephemeral.VolumeClaimTemplate.Spec
		}
	}
	return nil
}

// TestStorage: a fresh ephemeral volume at /workload in every pod, the code beneath it, HF_HOME on it.
func TestStorage(t *testing.T) {
	cases := map[string]struct {
		obj        client.Object
		pol        *policy.Policy
		size       string
		class      string
		hfHome     string
		noStorage  bool
		hfUntouchd bool
	}{
		"annotation":                  {obj: job(annotations.Storage, "100Gi", annotations.WorkloadConfigMap, "code").Obj(), size: "100Gi", hfHome: "/workload/.cache/huggingface"},
		"annotation with class":       {obj: job(annotations.Storage, "1Ti", annotations.StorageClass, "fast-nvme").Obj(), size: "1Ti", class: "fast-nvme", hfHome: "/workload/.cache/huggingface"},
		"policy default size":         {obj: job(annotations.GPUs, "1").Obj(), pol: storagePolicy("50Gi", "standard", false, ""), size: "50Gi", class: "standard", hfHome: "/workload/.cache/huggingface"},
		"annotation over policy":      {obj: job(annotations.Storage, "200Gi").Obj(), pol: storagePolicy("50Gi", "standard", false, ""), size: "200Gi", class: "standard", hfHome: "/workload/.cache/huggingface"},
		"policy class alone: no size": {obj: job(annotations.GPUs, "1").Obj(), pol: storagePolicy("", "standard", false, ""), noStorage: true},
		"locked, same values":         {obj: job(annotations.Storage, "50Gi").Obj(), pol: storagePolicy("50Gi", "standard", true, ""), size: "50Gi", class: "standard", hfHome: "/workload/.cache/huggingface"},
		"HF_HOME from the env annotation wins": {obj: job(annotations.Storage, "10Gi", annotations.Env, "envVars:\n- {name: HF_HOME, value: /data/hf}\n").Obj(),
			size: "10Gi", hfHome: "/data/hf"},
		"HF_HOME the container sets stays": {obj: job(annotations.Storage, "10Gi").Env(0, "HF_HOME", "/models").Obj(), size: "10Gi", hfHome: "/models"},
		"within the limit":                 {obj: job(annotations.Storage, "100Gi").Parallelism(2).Obj(), pol: storagePolicy("", "", false, "200Gi"), size: "100Gi", hfHome: "/workload/.cache/huggingface"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			out, w := run(t, tc.obj, tc.pol)
			ps := out.(*batchv1.Job).Spec.Template.Spec
			claim := storageVolume(t, ps)
			if tc.noStorage {
				if claim != nil {
					t.Errorf("a volume without a size: %+v", claim)
				}
				return
			}
			if claim == nil {
				t.Fatalf("no kaiwo-storage ephemeral volume in %+v", ps.Volumes)
			}
			if q := claim.Resources.Requests[corev1.ResourceStorage]; q.Cmp(resource.MustParse(tc.size)) != 0 {
				t.Errorf("size %s, want %s", q.String(), tc.size)
			}
			if got := ptr.Deref(claim.StorageClassName, ""); got != tc.class {
				t.Errorf("class %q, want %q", got, tc.class)
			}
			if len(claim.AccessModes) != 1 || claim.AccessModes[0] != corev1.ReadWriteOnce {
				t.Errorf("access modes %v", claim.AccessModes)
			}
			c := ps.Containers[0]
			mounts := map[string]string{}
			for _, m := range c.VolumeMounts {
				mounts[m.MountPath] = m.Name
			}
			if mounts["/workload"] != "kaiwo-storage" {
				t.Errorf("mounts %v: want kaiwo-storage at /workload", mounts)
			}
			if tc.obj.GetAnnotations()[annotations.WorkloadConfigMap] != "" && mounts["/workload/mounted"] != "kaiwo-workload" {
				t.Errorf("mounts %v: want the code at /workload/mounted", mounts)
			}
			if got := envOf(c)["HF_HOME"]; got != tc.hfHome {
				t.Errorf("HF_HOME %q, want %q", got, tc.hfHome)
			}
			if !strings.Contains(strings.Join(w, "\n"), "volume at /workload in each pod") {
				t.Errorf("warnings %q do not say so", w)
			}
			again, w2 := run(t, out, tc.pol)
			if diff := cmp.Diff(out, again); diff != "" || len(w2) > 0 {
				t.Errorf("second pass changed (-first,+second):\n%s\nwarnings %q", diff, w2)
			}
		})
	}
}

func TestStorageOnRay(t *testing.T) {
	out, _ := run(t, MakeRayService("s", "ml", "gpu").Annotate(annotations.GPUs, "16").Annotate(annotations.Storage, "100Gi").Obj(), storagePolicy("", "", false, "300Gi"))
	rs := out.(*rayv1.RayService)
	for _, tpl := range []corev1.PodTemplateSpec{rs.Spec.RayClusterSpec.HeadGroupSpec.Template, rs.Spec.RayClusterSpec.WorkerGroupSpecs[0].Template} {
		if storageVolume(t, tpl.Spec) == nil {
			t.Errorf("a Ray pod template without the workload volume")
		}
	}
}

// TestStorageDenials: bad sizes and classes, locks, limits and a conflicting mount are denied.
func TestStorageDenials(t *testing.T) {
	cases := map[string]struct {
		obj  client.Object
		pol  *policy.Policy
		want []string
	}{
		"negative size": {obj: job(annotations.Storage, "-1Gi").Obj(), want: []string{"metadata.annotations[kaiwo.silogen.ai/storage]", `"-1Gi"`, "positive whole number of bytes"}},
		"zero size":     {obj: job(annotations.Storage, "0").Obj(), want: []string{"kaiwo.silogen.ai/storage", `"0"`, "positive"}},
		"not a size":    {obj: job(annotations.Storage, "lots").Obj(), want: []string{"kaiwo.silogen.ai/storage", `"lots"`, "e.g. 100Gi"}},
		"fractional":    {obj: job(annotations.Storage, "0.5").Obj(), want: []string{"kaiwo.silogen.ai/storage", `"0.5"`, "whole number of bytes"}},
		"bad class":     {obj: job(annotations.Storage, "1Gi", annotations.StorageClass, "Fast_NVMe").Obj(), want: []string{"kaiwo.silogen.ai/storage-class", `"Fast_NVMe"`, "must be a StorageClass name"}},
		"class without a size": {obj: job(annotations.StorageClass, "fast").Obj(),
			want: []string{"kaiwo.silogen.ai/storage-class", `"fast"`, "needs kaiwo.silogen.ai/storage"}},
		"locked size": {obj: job(annotations.Storage, "500Gi").Obj(), pol: storagePolicy("50Gi", "standard", true, ""),
			want: []string{"kaiwo.silogen.ai/storage", `"500Gi"`, `is locked by KaiwoPolicy "ml": defaults.storage.size is "50Gi"`}},
		"locked class": {obj: job(annotations.StorageClass, "fast").Obj(), pol: storagePolicy("50Gi", "standard", true, ""),
			want: []string{"kaiwo.silogen.ai/storage-class", `"fast"`, `defaults.storage.storageClassName is "standard"`}},
		"over the limit across pods": {obj: job(annotations.Storage, "100Gi").Parallelism(3).Obj(), pol: storagePolicy("", "", false, "200Gi"),
			want: []string{"kaiwo.silogen.ai/storage", "100Gi in each of the workload's 3 pods exceeds limits.maxStoragePerWorkload (200Gi)"}},
		"over the limit by the policy default": {obj: job(annotations.GPUs, "1").Parallelism(3).Obj(), pol: storagePolicy("100Gi", "", false, "200Gi"),
			want: []string{"spec.defaults.storage.size", "exceeds limits.maxStoragePerWorkload"}},
		"overflowing total": {obj: job(annotations.Storage, "9E").Parallelism(2000).Obj(), pol: storagePolicy("", "", false, "1Pi"),
			want: []string{"kaiwo.silogen.ai/storage", "2000 pods exceeds"}},
		"ray pods count": {obj: MakeRayJob("r", "ml", "w").Annotate(annotations.GPUs, "16").Annotate(annotations.Storage, "100Gi").Obj(), pol: storagePolicy("", "", false, "250Gi"),
			want: []string{"3 pods exceeds"}}, // the head and the 2 workers planned; no submitter template
		"something else at /workload": {obj: job(annotations.Storage, "10Gi").Mount(0, "scratch", "/workload").Obj(),
			want: []string{"volumeMounts[0].mountPath", `"/workload"`, `Kaiwo mounts volume "kaiwo-storage"`}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			before := tc.obj.DeepCopyObject()
			_, err := mutateIn(mutate.Input{Object: tc.obj, Policy: tc.pol})
			wantConflict(t, err, tc.want...)
			if diff := cmp.Diff(before, tc.obj); diff != "" {
				t.Errorf("input modified:\n%s", diff)
			}
		})
	}
}

// TestStoragePolicyValidation: bad storage fields of a KaiwoPolicy name the field and the value.
func TestStoragePolicyValidation(t *testing.T) {
	q := func(s string) *resource.Quantity { v := resource.MustParse(s); return &v }
	base := func() *v1alpha1.KaiwoPolicy {
		return &v1alpha1.KaiwoPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: v1alpha1.KaiwoPolicySpec{NamespaceSelector: &metav1.LabelSelector{}}}
	}
	cases := map[string]struct {
		edit func(p *v1alpha1.KaiwoPolicy)
		want []string
	}{
		"negative size": {func(p *v1alpha1.KaiwoPolicy) {
			p.Spec.Defaults = &v1alpha1.PolicyDefaults{Storage: &v1alpha1.StorageDefaults{Size: q("-1Gi")}}
		},
			[]string{"spec.defaults.storage.size", "-1Gi", "must be greater than 0"}},
		"bad class": {func(p *v1alpha1.KaiwoPolicy) {
			p.Spec.Defaults = &v1alpha1.PolicyDefaults{Storage: &v1alpha1.StorageDefaults{StorageClassName: "Bad Class"}}
		}, []string{"spec.defaults.storage.storageClassName", "Bad Class"}},
		"zero limit": {func(p *v1alpha1.KaiwoPolicy) { p.Spec.Limits = &v1alpha1.PolicyLimits{MaxStoragePerWorkload: q("0")} },
			[]string{"spec.limits.maxStoragePerWorkload", "must be greater than 0"}},
		"lock without defaults.storage": {func(p *v1alpha1.KaiwoPolicy) { p.Spec.Locked = []v1alpha1.LockedField{"storage"} },
			[]string{"spec.locked[0]", "spec.defaults.storage is not set"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := base()
			tc.edit(p)
			errs := policy.Validate(p)
			msg := errs.ToAggregate()
			if msg == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(msg.Error(), w) {
					t.Errorf("%q lacks %q", msg.Error(), w)
				}
			}
		})
	}
	ok := base()
	ok.Spec.Defaults = &v1alpha1.PolicyDefaults{Storage: &v1alpha1.StorageDefaults{Size: q("100Gi"), StorageClassName: "fast"}}
	ok.Spec.Locked = []v1alpha1.LockedField{"storage"}
	ok.Spec.Limits = &v1alpha1.PolicyLimits{MaxStoragePerWorkload: q("1Ti")}
	if errs := policy.Validate(ok); len(errs) > 0 {
		t.Errorf("a good storage policy: %v", errs)
	}
	c, _ := policy.Compile(ok, nil)
	if p := c.Policy(); p.Defaults.StorageSize == nil || p.Defaults.StorageSize.String() != "100Gi" || p.Defaults.StorageClass != "fast" || p.Limits.MaxStoragePerWorkload.String() != "1Ti" || !p.IsLocked("storage") {
		t.Errorf("compiled %+v %+v", p.Defaults, p.Limits)
	}
}
