package mutate

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// Input is everything one mutation depends on.
type Input struct {
	// Object is the decoded workload; it is not modified.
	Object client.Object
	// Raw is the object's JSON as sent, when there is one; it shows explicit values the Go types drop.
	Raw []byte
	// Policy is the namespace's effective policy; nil means the built-in default.
	Policy *policy.Policy
	// User is the requesting user.
	User string
}

// Output is the result of a mutation that was allowed.
type Output struct {
	// Object is the mutated copy, or the input object when it is not managed.
	Object  client.Object
	Managed bool
	// Warnings say in one line each what was injected and why; empty when nothing changed.
	Warnings []string
	// Features are the features in effect, as the applied record lists them.
	Features []string
}

// Denial is a rejected object: every reason, each naming the field, the value and what is allowed.
type Denial struct {
	// Reason is a short, bounded class of the denial, for metrics.
	Reason string
	Errs   field.ErrorList
}

// Denial reasons.
const (
	ReasonUnsupported = "unsupported-kind"
	ReasonAnnotation  = "invalid-annotation"
	ReasonPolicy      = "policy"
	ReasonShape       = "unsupported-shape"
	ReasonLimit       = "limit"
	ReasonConflict    = "conflict"
)

func (d *Denial) Error() string { return "kaiwo: " + d.Errs.ToAggregate().Error() }

// Applied is the record the webhook leaves in the kaiwo.silogen.ai/applied annotation.
type Applied struct {
	Policy     string   `json:"policy"`
	Generation int64    `json:"generation"`
	Sources    []string `json:"sources,omitempty"`
	Features   []string `json:"features"`
}

// Mutate Kaiwo-ifies a copy of in.Object. It is pure: no I/O, no clock, no globals that change.
func Mutate(in Input) (*Output, error) {
	kind, ok := KindOf(in.Object)
	if !ok {
		return nil, &Denial{ReasonUnsupported, field.ErrorList{field.NotSupported(field.NewPath("kind"), fmt.Sprintf("%T", in.Object), []string{supportedKinds()})}}
	}
	pol := in.Policy
	if pol == nil {
		pol = policy.Default()
	}
	obj := in.Object.DeepCopyObject().(client.Object)
	w, err := kind.adapt(obj, in.Raw)
	if err != nil {
		return nil, err
	}
	if !isManaged(obj, w, pol) {
		return &Output{Object: in.Object}, nil
	}
	if pol.Err != nil {
		// A broken policy fails closed for the objects it would govern; the rest pass.
		return nil, &Denial{ReasonPolicy, field.ErrorList{field.InternalError(field.NewPath("metadata", "namespace"),
			fmt.Errorf("the namespace's policy cannot be applied until an admin fixes it: %w", pol.Err))}}
	}
	m := &mutation{w: w, obj: obj, pol: pol}
	if d := m.run(in.User); d != nil {
		return nil, d
	}
	if apiequality.Semantic.DeepEqual(in.Object, obj) {
		// Steps may undo each other (an admin patch that rewrites a list a default extends):
		// what counts is the result, and a second pass must be silent.
		m.warnings = nil
	}
	return &Output{Object: obj, Managed: true, Warnings: m.warnings, Features: m.features}, nil
}

// isManaged: a Kaiwo annotation or the managed label, or a GPU request in an Enforce namespace.
func isManaged(obj client.Object, w workload, pol *policy.Policy) bool {
	for k := range obj.GetAnnotations() {
		if annotations.IsKaiwo(k) {
			return true
		}
	}
	if obj.GetLabels()[annotations.Managed] == "true" {
		return true
	}
	return pol.Mode == policy.Enforce && requestsGPUs(w.templates())
}

type mutation struct {
	w        workload
	obj      client.Object
	pol      *policy.Policy
	s        *settings
	warnings []string
	features []string
}

func (m *mutation) warn(format string, args ...any) {
	m.warnings = append(m.warnings, "kaiwo: "+fmt.Sprintf(format, args...))
}

func (m *mutation) run(user string) *Denial {
	kind, _ := KindOf(m.obj)
	opts, errs := ParseOptions(m.obj.GetAnnotations())
	if len(errs) > 0 {
		return &Denial{ReasonAnnotation, errs}
	}
	s, errs := resolveSettings(m.obj, kind, opts, m.pol)
	m.s = s
	errs = append(errs, m.checkVendors()...)
	if len(errs) > 0 {
		return &Denial{ReasonPolicy, errs}
	}
	if errs := m.w.check(); len(errs) > 0 {
		return &Denial{ReasonShape, errs}
	}
	p, errs := m.w.plan(s)
	if len(errs) > 0 {
		return &Denial{ReasonShape, errs}
	}
	if max := m.pol.Limits.MaxGPUsPerWorkload; max > 0 && p.workloadGPUs > int64(max) {
		return &Denial{ReasonLimit, field.ErrorList{field.Invalid(annotationsPath.Key(annotations.GPUs), p.workloadGPUs,
			fmt.Sprintf("the workload's %d GPUs exceed limits.maxGpusPerWorkload (%d) of KaiwoPolicy %q", p.workloadGPUs, max, m.pol.Name))}}
	}
	steps := []func(plan) field.ErrorList{m.queue, m.ttl, m.patch, m.gpus, m.templates}
	for _, step := range steps {
		if errs := step(p); len(errs) > 0 {
			return &Denial{ReasonConflict, errs}
		}
	}
	// The plan is explained only when something changed: a second pass is silent.
	if len(m.warnings) > 0 {
		notes := make([]string, 0, len(p.notes)+len(m.warnings))
		for _, n := range p.notes {
			notes = append(notes, "kaiwo: "+n)
		}
		m.warnings = append(notes, m.warnings...)
	}
	m.record(user)
	return nil
}

// checkVendors denies GPU resources already in the templates that the policy does not allow.
func (m *mutation) checkVendors() field.ErrorList {
	var errs field.ErrorList
	for _, t := range m.w.templates() {
		for i, c := range t.spec.Spec.Containers {
			for _, r := range gpuResources {
				vendor := strings.TrimSuffix(string(r), ".com/gpu")
				if n, _ := gpuQuantity(c.Resources, r); n > 0 && !m.pol.Limits.VendorAllowed(vendor) {
					errs = append(errs, field.Invalid(t.path.Child("spec", "containers").Index(i).Child("resources").Key(string(r)), n,
						fmt.Sprintf("vendor %q is not allowed by KaiwoPolicy %q: limits.allowedVendors is %s", vendor, m.pol.Name, quoteAll(m.pol.Limits.AllowedVendors))))
				}
			}
		}
	}
	return errs
}

func (m *mutation) queue(plan) field.ErrorList {
	s := m.s
	if !s.queued {
		return nil
	}
	m.features = append(m.features, "queue")
	labels := map[string]string{annotations.KueueQueueName: s.queue}
	if s.priorityClass != "" {
		labels[annotations.KueuePriorityClass] = s.priorityClass
	}
	changed := setObjectLabels(m.obj, labels)
	notes, errs := m.w.queue(s)
	if len(errs) > 0 {
		return errs
	}
	if changed || len(notes) > 0 {
		msg := fmt.Sprintf("queued in LocalQueue %s (%s)", s.queue, s.queueFrom)
		if s.priorityClass != "" {
			msg += fmt.Sprintf(" with priority class %s", s.priorityClass)
		}
		if len(notes) > 0 {
			msg += "; " + strings.Join(notes, ", ")
		}
		m.warn("%s", msg)
	}
	return nil
}

func (m *mutation) ttl(plan) field.ErrorList {
	f, ok := m.w.(finisher)
	if !ok || m.s.ttl == nil {
		return nil
	}
	cur, path, applies := f.ttl()
	want := *m.s.ttl
	if !applies {
		if m.s.opts.TTL != nil {
			return field.ErrorList{field.Invalid(annotationsPath.Key(annotations.TTLSecondsAfter), fmt.Sprint(want),
				"this object cannot take a TTL: KubeRay needs shutdownAfterJobFinishes: true and no deletionRules for it")}
		}
		return nil
	}
	m.features = append(m.features, "ttl")
	switch {
	case cur == nil:
		f.setTTL(want)
		if now, _, _ := f.ttl(); now != nil {
			m.warn("ttlSecondsAfterFinished=%d", want)
		}
	case *cur != want && (m.s.opts.TTL != nil || m.pol.IsLocked(policy.FieldTTL)):
		return field.ErrorList{field.Invalid(path, *cur, fmt.Sprintf("conflicts with the TTL of %d that Kaiwo sets (annotation or locked policy); remove one of them", want))}
	}
	return nil
}

func (m *mutation) gpus(p plan) field.ErrorList {
	s := m.s
	if p.target == nil {
		if s.gpus != nil {
			m.features = append(m.features, "gpus")
		}
		return nil
	}
	m.features = append(m.features, "gpus")
	c, cp, err := appContainer(*p.target, s.opts.Container)
	if err != nil {
		return field.ErrorList{err}
	}
	d := &m.pol.Defaults
	changed, err := setGPUs(c, cp, s.resource, int64(p.perReplica), d.CPUPerGPU, d.MemoryPerGPU)
	if err != nil {
		return field.ErrorList{err}
	}
	if changed {
		m.warn("%d %s on container %s of %s; CPU and memory at %s and %s per GPU where the container set none; requests equal to limits",
			p.perReplica, s.resource, c.Name, p.target.path, d.CPUPerGPU.String(), d.MemoryPerGPU.String())
	}
	return nil
}

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
		userEnv = s.opts.Env.envVars()
		for _, e := range s.opts.Env.EnvVars {
			if sm := e.MountSecret; sm != nil {
				name := secretVolumeName(sm.Secret)
				if !slices.ContainsFunc(volumes, func(v corev1.Volume) bool { return v.Name == name }) {
					volumes = append(volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: sm.Secret}}})
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
		for _, v := range volumes {
			note("volumes")(addVolume(ps, t.path, v))
		}
		ownShm := ownShm(ps, shm)
		useShm := ownShm == "" || s.shmExplicit
		if s.shmExplicit && ownShm != "" {
			errs = append(errs, field.Invalid(annotationsPath.Key(annotations.ShmSize), s.shm.String(),
				fmt.Sprintf("%s already has its own /dev/shm (%s); remove kaiwo.silogen.ai/shm-size (or the policy's locked shmSize applies) or remove that volume", t.path, ownShm)))
			continue
		}
		if useShm {
			note("shm")(addVolume(ps, t.path, shm))
		}
		for i := range ps.Containers {
			c, cp := &ps.Containers[i], t.path.Child("spec", "containers").Index(i)
			note("num")(setEnv(c, cp, num))
			note("env")(setEnv(c, cp, userEnv))
			for _, vm := range mounts {
				note("volumes")(addMount(c, cp, vm))
			}
			if useShm {
				note("shm")(addMount(c, cp, corev1.VolumeMount{Name: shmVolume, MountPath: shmPath}))
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

// patch applies the admin's podTemplatePatch first, so the features after it (GPUs, env, the policy's
// tolerations and nodeSelector) see and keep what it sets, and conflicts with it are reported.
func (m *mutation) patch(plan) field.ErrorList {
	if len(m.pol.PodTemplatePatch) == 0 {
		return nil
	}
	changed := false
	for _, t := range m.w.templates() {
		ok, err := applyPatch(t, m.pol.PodTemplatePatch, m.pol.Name)
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
		return p.target.spec == t.spec
	}
	return requestsGPUs([]template{t})
}

func (m *mutation) nodeSelector(ps *corev1.PodSpec, path *field.Path) (bool, *field.Error) {
	changed := false
	for _, k := range sortedKeys(m.pol.Defaults.NodeSelector) {
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
	case m.pol.IsLocked(policy.FieldAffinity) && !apiequality.Semantic.DeepEqual(ps.Affinity, a):
		return false, field.Forbidden(path.Child("spec", "affinity"), fmt.Sprintf("is locked by KaiwoPolicy %q: defaults.affinity applies and cannot be replaced", m.pol.Name))
	}
	return false, nil
}

// applyPatch applies the admin's strategic merge patch to t.
func applyPatch(t template, patch []byte, name string) (bool, *field.Error) {
	orig, err := json.Marshal(t.spec)
	if err != nil {
		return false, field.InternalError(t.path, err)
	}
	out, err := strategicpatch.StrategicMergePatch(orig, patch, corev1.PodTemplateSpec{})
	if err != nil {
		return false, field.Invalid(t.path, name, "podTemplatePatch of KaiwoPolicy does not apply: "+err.Error())
	}
	var next corev1.PodTemplateSpec
	if err := json.Unmarshal(out, &next); err != nil {
		return false, field.Invalid(t.path, name, "podTemplatePatch of KaiwoPolicy does not apply: "+err.Error())
	}
	if apiequality.Semantic.DeepEqual(*t.spec, next) {
		return false, nil
	}
	*t.spec = next
	return true, nil
}

// record writes the managed and user labels and the applied annotation.
func (m *mutation) record(user string) {
	labels := map[string]string{annotations.Managed: "true"}
	if u := LabelSafe(user); u != "" && m.obj.GetLabels()[annotations.User] == "" {
		labels[annotations.User] = u
	}
	setObjectLabels(m.obj, labels)
	sort.Strings(m.features)
	m.features = slices.Compact(m.features)
	rec := Applied{Policy: m.pol.Name, Generation: m.pol.Generation, Features: m.features}
	if len(m.pol.Sources) > 1 {
		for _, src := range m.pol.Sources {
			rec.Sources = append(rec.Sources, fmt.Sprintf("%s/%d", src.Name, src.Generation))
		}
	}
	b, _ := json.Marshal(rec)
	a := m.obj.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[annotations.Applied] = string(b)
	m.obj.SetAnnotations(a)
}

var unsafeLabel = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// LabelSafe turns a user name into a label value: other characters become '-', ends are alphanumeric,
// and a name over 63 characters keeps its start and a hash of the whole.
func LabelSafe(user string) string {
	v := strings.Trim(unsafeLabel.ReplaceAllString(user, "-"), "-._")
	if len(v) > 63 {
		v = fmt.Sprintf("%s-%08x", strings.Trim(v[:54], "-._"), fnv32(user))
	}
	return v
}

func setObjectLabels(obj metav1.Object, labels map[string]string) bool {
	cur := obj.GetLabels()
	changed := false
	for _, k := range sortedKeys(labels) {
		if cur[k] != labels[k] {
			if cur == nil {
				cur = map[string]string{}
			}
			cur[k] = labels[k]
			changed = true
		}
	}
	if changed {
		obj.SetLabels(cur)
	}
	return changed
}

func setLabels(meta *metav1.ObjectMeta, labels map[string]string) bool {
	return setObjectLabels(meta, labels)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
