package mutate

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation/field"
	sjson "sigs.k8s.io/json"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// templates applies every per-template feature to every managed pod template.
func (m *mutation) templates(p plan) field.ErrorList {
	s, d := m.s, &m.pol.Defaults
	num := []corev1.EnvVar{
		{Name: EnvNumGPUs, Value: strconv.FormatInt(int64(p.replicas)*int64(p.perReplica), 10)},
		{Name: EnvNumReplicas, Value: strconv.Itoa(int(p.replicas))},
		{Name: EnvNumGPUsPerReplica, Value: strconv.Itoa(int(p.perReplica))},
	}
	var userEnv []corev1.EnvVar
	var volumes []corev1.Volume
	var mounts []corev1.VolumeMount
	if s.opts.Env != nil {
		ours := newLookup(volumeName)
		userEnv = envVars(s.opts.Env)
		for _, e := range s.opts.Env.EnvVars {
			if sm := e.MountSecret; sm != nil {
				name := secretVolumeName(sm.Secret)
				if ours.find(volumes, name) < 0 {
					volumes = append(volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: sm.Secret}}})
					ours.appended(volumes)
				}
				mounts = append(mounts, corev1.VolumeMount{Name: name, MountPath: sm.Path, SubPath: sm.Key, ReadOnly: true})
			}
		}
		m.features = append(m.features, "env")
	}
	if s.opts.ConfigMap != "" {
		volumes = append(volumes, corev1.Volume{Name: codeVolume, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: s.opts.ConfigMap}}}})
		mounts = append(mounts, corev1.VolumeMount{Name: codeVolume, MountPath: s.codePath})
		m.features = append(m.features, "code")
	}
	shm := corev1.Volume{Name: shmVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: s.shm}}}
	m.features = append(m.features, "env-num-gpus", "shm")
	if s.pullSecret != "" {
		m.features = append(m.features, "image-pull-secret")
	}
	if len(d.Tolerations) > 0 {
		m.features = append(m.features, "tolerations")
	}
	if len(d.NodeSelector) > 0 {
		m.features = append(m.features, "node-selector")
	}
	if d.Affinity != nil {
		m.features = append(m.features, "affinity")
	}
	if s.opts.GPUModel != "" {
		m.features = append(m.features, "gpu-model")
	}
	if len(m.pol.PodTemplatePatch) > 0 {
		m.features = append(m.features, "pod-template-patch")
	}

	changed := map[string]bool{}
	var errs field.ErrorList
	note := func(feature string) func(bool, *field.Error) {
		return func(ok bool, err *field.Error) {
			if err != nil {
				errs = append(errs, err)
			}
			if ok {
				changed[feature] = true
			}
		}
	}
	for _, t := range m.w.templates() {
		ps := &t.spec.Spec
		vols := newLookup(volumeName)
		for _, v := range volumes {
			if needsVolume(ps, v, mounts) {
				note("volumes")(addVolume(ps, t.path, v, vols))
			}
		}
		ownShm := ownShm(ps, shm)
		useShm := ownShm == "" || s.shmExplicit
		if s.shmExplicit && ownShm != "" {
			errs = append(errs, field.Invalid(annotationsPath.Key(annotations.ShmSize), s.shm.String(),
				fmt.Sprintf("%s already has its own /dev/shm (%s); remove kaiwo.silogen.ai/shm-size (or the policy's locked shmSize applies) or remove that volume", t.name(), ownShm)))
			continue
		}
		if useShm {
			note("shm")(addVolume(ps, t.path, shm, vols))
		}
		for i := range ps.Containers {
			c, cp := &ps.Containers[i], t.path.Child("spec", "containers").Index(i)
			env, cm := newLookup(envName), newLookup(mountPath)
			note("num")(setEnv(c, cp, num, env))
			note("env")(setEnv(c, cp, userEnv, env))
			for _, vm := range mounts {
				if !agreeingMount(ps, c, vm, volumeNamed(volumes, vm.Name)) {
					note("volumes")(addMount(c, cp, vm, cm))
				}
			}
			if useShm {
				note("shm")(addMount(c, cp, corev1.VolumeMount{Name: shmVolume, MountPath: shmPath}, cm))
			}
		}
		if s.pullSecret != "" && !slices.ContainsFunc(ps.ImagePullSecrets, func(r corev1.LocalObjectReference) bool { return r.Name == s.pullSecret }) {
			ps.ImagePullSecrets = append(ps.ImagePullSecrets, corev1.LocalObjectReference{Name: s.pullSecret})
			changed["pull"] = true
		}
		for _, tol := range d.Tolerations {
			note("tolerations")(addToleration(ps, tol), nil)
		}
		note("nodeSelector")(m.nodeSelector(ps, t.path))
		note("affinity")(m.affinity(ps, t.path))
		if gpuTemplate(t, p) && s.opts.GPUModel != "" {
			note("model")(requireNodeLabel(ps, productLabels[s.vendor], s.opts.GPUModel), nil)
		}
	}
	if len(errs) > 0 {
		return errs
	}
	m.warnTemplates(changed, p, shm, mounts)
	return nil
}

func (m *mutation) warnTemplates(changed map[string]bool, p plan, shm corev1.Volume, mounts []corev1.VolumeMount) {
	s := m.s
	if changed["num"] {
		m.warn("%s=%d, %s=%d, %s=%d in every container", EnvNumGPUs, int64(p.replicas)*int64(p.perReplica), EnvNumReplicas, p.replicas, EnvNumGPUsPerReplica, p.perReplica)
	}
	if changed["env"] {
		m.warn("%d env vars from %s", len(s.opts.Env.EnvVars), annotations.Env)
	}
	if changed["volumes"] {
		var where []string
		for _, vm := range mounts {
			where = append(where, vm.MountPath)
		}
		m.warn("mounted %s", strings.Join(where, ", "))
	}
	if changed["shm"] {
		size := "no size limit"
		if shm.EmptyDir.SizeLimit != nil {
			size = shm.EmptyDir.SizeLimit.String()
		}
		m.warn("memory-backed /dev/shm (%s)", size)
	}
	if changed["pull"] {
		m.warn("imagePullSecret %s", s.pullSecret)
	}
	if changed["tolerations"] || changed["nodeSelector"] || changed["affinity"] {
		m.warn("tolerations, nodeSelector and affinity of KaiwoPolicy %s", m.pol.Name)
	}
	if changed["model"] {
		m.warn("requires GPU model %s (node label %s)", s.opts.GPUModel, productLabels[s.vendor])
	}
}

// podTemplatePatch applies the admin's podTemplatePatch first, so the features after it (GPUs, env, the
// policy's tolerations and nodeSelector) see and keep what it sets, and conflicts with it are reported.
func (m *mutation) podTemplatePatch(plan) field.ErrorList {
	if len(m.pol.PodTemplatePatch) == 0 {
		return nil
	}
	changed := false
	for _, t := range m.w.templates() {
		ok, err := mergePodTemplatePatch(t, m.pol.PodTemplatePatch, m.pol.Name)
		if err != nil {
			return field.ErrorList{err}
		}
		changed = changed || ok
	}
	if changed {
		m.warn("podTemplatePatch of KaiwoPolicy %s", m.pol.Name)
	}
	return nil
}

// ownShm describes a /dev/shm the pod has that is not Kaiwo's, or "".
func ownShm(ps *corev1.PodSpec, ours corev1.Volume) string {
	for _, v := range ps.Volumes {
		if v.Name == shmVolume && !sameVolume(v, ours) {
			return fmt.Sprintf("volume %q", v.Name)
		}
	}
	for _, c := range ps.Containers {
		for _, vm := range c.VolumeMounts {
			if vm.MountPath == shmPath && vm.Name != shmVolume {
				return fmt.Sprintf("volume %q mounted by container %q", vm.Name, c.Name)
			}
		}
	}
	return ""
}

// gpuTemplate reports whether t is where the plan puts GPUs, or asks for GPUs itself.
func gpuTemplate(t template, p plan) bool {
	if p.target != nil {
		return p.target.spec == t.spec || slices.ContainsFunc(p.also, func(a template) bool { return a.spec == t.spec })
	}
	return requestsGPUs([]template{t})
}

func (m *mutation) nodeSelector(ps *corev1.PodSpec, path *field.Path) (bool, *field.Error) {
	changed := false
	for _, k := range slices.Sorted(maps.Keys(m.pol.Defaults.NodeSelector)) {
		v := m.pol.Defaults.NodeSelector[k]
		cur, ok := ps.NodeSelector[k]
		switch {
		case !ok:
			if ps.NodeSelector == nil {
				ps.NodeSelector = map[string]string{}
			}
			ps.NodeSelector[k] = v
			changed = true
		case cur != v && m.pol.IsLocked(policy.FieldNodeSelector):
			return false, field.Invalid(path.Child("spec", "nodeSelector").Key(k), cur,
				fmt.Sprintf("is locked by KaiwoPolicy %q: defaults.nodeSelector sets %s=%s", m.pol.Name, k, v))
		}
	}
	return changed, nil
}

func (m *mutation) affinity(ps *corev1.PodSpec, path *field.Path) (bool, *field.Error) {
	a := m.pol.Defaults.Affinity
	switch {
	case a == nil:
		return false, nil
	case ps.Affinity == nil:
		ps.Affinity = a.DeepCopy()
		return true, nil
	case m.pol.IsLocked(policy.FieldAffinity) && !(&lockedTemplate{pol: m.pol, gpuModel: modelRequirement(m.pol, m.s.opts)}).affinityAllowed(ps.Affinity):
		return false, field.Forbidden(path.Child("spec", "affinity"), fmt.Sprintf("is locked by KaiwoPolicy %q: defaults.affinity applies and cannot be replaced", m.pol.Name))
	}
	return false, nil
}

// mergePodTemplatePatch applies the admin's podTemplatePatch, a strategic merge patch, to t. It merges the unstructured form, as kubectl
// patch does after decoding, which spares a JSON encoding and decoding of the template; and it converts
// only the parts the patch names (metadata, spec), since a merge leaves the others as they are.
func mergePodTemplatePatch(t template, patch []byte, name string) (bool, *field.Error) {
	var p map[string]any
	if err := sjson.UnmarshalCaseSensitivePreserveInts(patch, &p); err != nil { // ints as int64, as unstructured holds them
		return false, field.Invalid(t.at(), name, "podTemplatePatch of KaiwoPolicy does not apply: "+err.Error())
	}
	// A part is a field of the template that a patch key names, as a pointer; "" is the template itself.
	type part struct {
		key           string
		field, merged any
	}
	parts := []part{{key: "metadata", field: &t.spec.ObjectMeta}, {key: "spec", field: &t.spec.Spec}}
	for k := range p {
		if k != "metadata" && k != "spec" { // a directive or an unknown key: the whole template
			parts = []part{{key: "", field: t.spec}}
			break
		}
	}
	// Each part is merged into a new value; the template changes only once every part merged.
	for i := range parts {
		sub, ok := p[parts[i].key]
		if parts[i].key == "" {
			sub, ok = p, true
		}
		if !ok {
			continue
		}
		merged, err := mergePart(parts[i].field, parts[i].key, sub)
		if err != nil {
			return false, field.Invalid(t.at(), name, "podTemplatePatch of KaiwoPolicy does not apply: "+err.Error())
		}
		parts[i].merged = merged
	}
	changed := false
	for _, pt := range parts {
		if pt.merged == nil || apiequality.Semantic.DeepEqual(pt.field, pt.merged) {
			continue
		}
		reflect.ValueOf(pt.field).Elem().Set(reflect.ValueOf(pt.merged).Elem())
		changed = true
	}
	return changed, nil
}

// mergePart returns a new value of part's type: part, the field key of a pod template ("" for the
// template itself), with patch merged in. part is not modified.
func mergePart(part any, key string, patch any) (any, error) {
	orig, err := runtime.DefaultUnstructuredConverter.ToUnstructured(part)
	if err != nil {
		return nil, err
	}
	doc, pdoc := orig, patch
	if key != "" {
		doc, pdoc = map[string]any{key: orig}, map[string]any{key: patch}
	}
	pm, ok := pdoc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("the patch is not a JSON object")
	}
	out, err := strategicpatch.StrategicMergeMapPatchUsingLookupPatchMeta(doc, pm, policy.PodTemplatePatchMeta)
	if err != nil {
		return nil, err
	}
	if key != "" {
		o, ok := out[key].(map[string]any)
		if !ok && out[key] != nil {
			return nil, fmt.Errorf("%s is not an object after the patch", key)
		}
		out = o // nil when the patch deleted it: the zero value
	}
	merged := reflect.New(reflect.TypeOf(part).Elem()).Interface()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(out, merged); err != nil {
		return nil, err
	}
	return merged, nil
}
