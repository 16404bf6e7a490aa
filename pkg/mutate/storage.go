package mutate

import (
	"fmt"
	"math"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// The workload volume, as the Kaiwo CLI's --storage made it: a fresh volume at /workload, the code
// ConfigMap beneath it at /workload/mounted, and the Hugging Face cache on it. It is a generic ephemeral
// volume, so Kubernetes creates its claim with the pod and deletes it with the pod: admission creates
// nothing.
const (
	storageVolume   = "kaiwo-storage"
	storagePath     = "/workload"
	storageCodePath = "/workload/mounted"
	// EnvHFHome is where Hugging Face libraries download to; on the workload volume by default.
	EnvHFHome = "HF_HOME"
	hfHome    = "/workload/.cache/huggingface"
)

// resolveStorage picks the workload volume's size and class: the annotations over the policy's
// defaults.storage, which may be locked.
func (s *settings) resolveStorage() field.ErrorList {
	o, d, pol := s.opts, &s.pol.Defaults, s.pol
	var errs field.ErrorList
	s.storage, s.storageClass = d.StorageSize, d.StorageClass
	locked := pol.IsLocked(policy.FieldStorage)
	if o.Storage != nil {
		if locked && (d.StorageSize == nil || o.Storage.Cmp(*d.StorageSize) != 0) {
			errs = append(errs, field.Invalid(annotationsPath.Key(annotations.Storage), o.Storage.String(),
				fmt.Sprintf("is locked by KaiwoPolicy %q: defaults.storage.size is %q and cannot be changed", pol.Name, quantityString(d.StorageSize))))
		}
		s.storage = o.Storage
	}
	if o.StorageClass != "" {
		if locked && o.StorageClass != d.StorageClass {
			errs = append(errs, field.Invalid(annotationsPath.Key(annotations.StorageClass), o.StorageClass,
				fmt.Sprintf("is locked by KaiwoPolicy %q: defaults.storage.storageClassName is %q and cannot be changed", pol.Name, d.StorageClass)))
		}
		s.storageClass = o.StorageClass
		if s.storage == nil {
			errs = append(errs, field.Invalid(annotationsPath.Key(annotations.StorageClass), o.StorageClass,
				"needs kaiwo.silogen.ai/storage (or the policy's defaults.storage.size): the class of which volume?"))
		}
	}
	if s.storage != nil {
		s.codePath = storageCodePath
	}
	return errs
}

func quantityString(q *resource.Quantity) string {
	if q == nil {
		return ""
	}
	return q.String()
}

// storageLimit denies workload volumes over all the workload's pods beyond limits.maxStoragePerWorkload.
func (m *mutation) storageLimit() *field.Error {
	max, size := m.pol.Limits.MaxStoragePerWorkload, m.s.storage
	if max == nil || size == nil {
		return nil
	}
	pods := podCount(m.w)
	total := size.DeepCopy()
	if ok := total.Mul(pods); ok && total.Cmp(*max) <= 0 {
		return nil
	}
	p := annotationsPath.Key(annotations.Storage)
	if m.s.opts.Storage == nil {
		p = field.NewPath("spec", "defaults", "storage", "size")
	}
	return field.Invalid(p, size.String(), fmt.Sprintf("%s in each of the workload's %d pods exceeds limits.maxStoragePerWorkload (%s) of KaiwoPolicy %q",
		size.String(), pods, max.String(), m.pol.Name))
}

// podCount is how many pods of the workload run at once at most, each with its own workload volume:
// the pods of every template, as the GPU count takes them.
func podCount(w workload) int64 {
	var n int64
	for _, p := range w.pods() {
		var ok bool
		if n, ok = addChecked(n, p.n); !ok {
			return math.MaxInt64
		}
	}
	return n
}

// storage gives every pod template the workload volume and every app container its mount and HF_HOME.
func (m *mutation) storage(plan) field.ErrorList {
	s := m.s
	if s.storage == nil {
		return nil
	}
	m.features = append(m.features, "storage")
	claim := corev1.PersistentVolumeClaimSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: *s.storage}},
		VolumeMode:  ptr.To(corev1.PersistentVolumeFilesystem), // as the API server defaults it, so a stored object agrees
	}
	if s.storageClass != "" {
		claim.StorageClassName = ptr.To(s.storageClass)
	}
	vol := corev1.Volume{Name: storageVolume, VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{
		VolumeClaimTemplate: &corev1.PersistentVolumeClaimTemplate{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{annotations.Managed: "true"}},
			Spec:       claim,
		}}}}
	hf := corev1.EnvVar{Name: EnvHFHome, Value: hfHome}
	userHF := s.opts.Env != nil && slices.ContainsFunc(s.opts.Env.EnvVars, func(e annotations.EnvEntry) bool {
		return e.Name == EnvHFHome || e.FromSecret != nil && e.FromSecret.Name == EnvHFHome || e.MountSecret != nil && e.MountSecret.Name == EnvHFHome
	})
	changed := false
	var errs field.ErrorList
	for _, t := range m.w.templates() {
		ps := &t.spec.Spec
		ok, err := addVolume(ps, t.path, vol, newLookup(volumeName))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		changed = changed || ok
		for i := range ps.Containers {
			c, cp := &ps.Containers[i], t.path.Child("spec", "containers").Index(i)
			ok, err := addMount(c, cp, corev1.VolumeMount{Name: storageVolume, MountPath: storagePath}, newLookup(mountPath))
			if err != nil {
				errs = append(errs, err)
			}
			changed = changed || ok
			if !userHF && envNamed(c, EnvHFHome) < 0 {
				c.Env = append(c.Env, hf)
				changed = true
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	if changed {
		class := "the cluster's default class"
		if s.storageClass != "" {
			class = "class " + s.storageClass
		}
		m.warn("a %s volume at %s in each pod (%s; its claim is created and deleted with the pod); code at %s; %s=%s unless set",
			s.storage.String(), storagePath, class, storageCodePath, EnvHFHome, hfHome)
	}
	return nil
}
