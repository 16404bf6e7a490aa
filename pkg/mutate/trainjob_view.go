package mutate

import (
	"encoding/json"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	trainer "github.com/silogen/kaiwo-webhook/internal/trainerapi"
	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// kaiwoPodPatch is the pod template patch of the "node" replicated job in Kaiwo's runtime patch; with
// create, the patch is made first in spec.runtimePatches when it is missing (before Kueue's, whose
// tolerations and node selectors of the admitted flavor must win), else nil.
func kaiwoPodPatch(j *trainer.TrainJob, create bool) *trainer.PodTemplatePatch {
	i := slices.IndexFunc(j.Spec.RuntimePatches, func(p trainer.RuntimePatch) bool { return p.Manager == kaiwoPatchManager })
	if i < 0 {
		if !create {
			return nil
		}
		j.Spec.RuntimePatches = slices.Insert(j.Spec.RuntimePatches, 0, trainer.RuntimePatch{Manager: kaiwoPatchManager})
		i = 0
	}
	rp := &j.Spec.RuntimePatches[i]
	if !create && (rp.TrainingRuntimeSpec == nil || rp.TrainingRuntimeSpec.Template == nil || rp.TrainingRuntimeSpec.Template.Spec == nil) {
		return nil
	}
	if rp.TrainingRuntimeSpec == nil {
		rp.TrainingRuntimeSpec = &trainer.TrainingRuntimeSpecPatch{}
	}
	if rp.TrainingRuntimeSpec.Template == nil {
		rp.TrainingRuntimeSpec.Template = &trainer.JobSetTemplatePatch{}
	}
	t := rp.TrainingRuntimeSpec.Template
	if t.Spec == nil {
		t.Spec = &trainer.JobSetSpecPatch{}
	}
	k := slices.IndexFunc(t.Spec.ReplicatedJobs, func(r trainer.ReplicatedJobPatch) bool { return r.Name == trainerNode })
	if k < 0 {
		if !create {
			return nil
		}
		t.Spec.ReplicatedJobs = append(t.Spec.ReplicatedJobs, trainer.ReplicatedJobPatch{Name: trainerNode})
		k = len(t.Spec.ReplicatedJobs) - 1
	}
	r := &t.Spec.ReplicatedJobs[k]
	switch {
	case r.Template != nil && r.Template.Spec != nil && r.Template.Spec.Template != nil:
	case !create:
		return nil
	default:
		if r.Template == nil {
			r.Template = &trainer.JobTemplatePatch{}
		}
		if r.Template.Spec == nil {
			r.Template.Spec = &trainer.JobSpecPatch{}
		}
		r.Template.Spec.Template = &trainer.PodTemplatePatch{}
	}
	return r.Template.Spec.Template
}

// podPatchOf is the part of the view that Kaiwo's runtime patch holds, or nil when there is none.
func podPatchOf(v *corev1.PodTemplateSpec) *trainer.PodTemplatePatch {
	p := &trainer.PodTemplatePatch{}
	if len(v.Labels) > 0 || len(v.Annotations) > 0 {
		p.Metadata = &metav1.ObjectMeta{Labels: v.Labels, Annotations: v.Annotations}
	}
	s, c := v.Spec, v.Spec.Containers[0]
	sp := trainer.PodSpecPatch{Volumes: s.Volumes, Tolerations: s.Tolerations, NodeSelector: s.NodeSelector, Affinity: s.Affinity,
		ImagePullSecrets: s.ImagePullSecrets, SecurityContext: s.SecurityContext, SchedulingGates: s.SchedulingGates}
	if s.ServiceAccountName != "" {
		sp.ServiceAccountName = ptr.To(s.ServiceAccountName)
	}
	if len(c.VolumeMounts) > 0 || c.SecurityContext != nil {
		sp.Containers = []trainer.ContainerPatch{{Name: trainerNode, VolumeMounts: c.VolumeMounts, SecurityContext: c.SecurityContext}}
	}
	if !apiequality.Semantic.DeepEqual(sp, trainer.PodSpecPatch{}) {
		p.Spec = &sp
	}
	if p.Metadata == nil && p.Spec == nil {
		return nil
	}
	return p
}

// sync writes the view back: the node container into spec.trainer, the pod-level fields into Kaiwo's
// runtime patch. What neither holds (an init container, a second container, a container field other than
// image, command, args, env, resources, volumeMounts and securityContext, a pod field other than those
// podPatchOf names) is denied, naming it.
func (j *trainJob) sync() field.ErrorList {
	v := j.view
	rest := v.DeepCopy()
	rest.Labels, rest.Annotations = nil, nil
	ps := &rest.Spec
	ps.Volumes, ps.Tolerations, ps.NodeSelector, ps.Affinity, ps.ImagePullSecrets = nil, nil, nil, nil, nil
	ps.ServiceAccountName, ps.SecurityContext, ps.SchedulingGates = "", nil, nil
	if len(ps.Containers) > 0 && ps.Containers[0].Name == trainerNode {
		ps.Containers[0] = corev1.Container{}
	}
	if !apiequality.Semantic.DeepEqual(rest, &corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{}}}}) {
		b, _ := json.Marshal(rest)
		return field.ErrorList{field.Forbidden(trainerPath, fmt.Sprintf(
			"a TrainJob has no pod template: Kaiwo carries env and resources in spec.trainer and volumes, mounts, tolerations, nodeSelector, affinity, image pull secrets, pod labels and annotations in its runtime patch (manager %s), and cannot carry %s (from the policy's podTemplatePatch or an annotation): set it in the TrainingRuntime",
			kaiwoPatchManager, b))}
	}
	c := v.Spec.Containers[0]
	hasResources := len(c.Resources.Limits)+len(c.Resources.Requests)+len(c.Resources.Claims) > 0
	if j.Spec.Trainer == nil && (len(c.Env) > 0 || hasResources) {
		j.Spec.Trainer = &trainer.Trainer{}
	}
	if tr := j.Spec.Trainer; tr != nil {
		tr.Env = nil
		if len(c.Env) > 0 {
			tr.Env = c.Env
		}
		if hasResources || tr.ResourcesPerNode != nil {
			tr.ResourcesPerNode = c.Resources.DeepCopy()
		}
		if c.Image != ptr.Deref(tr.Image, "") {
			tr.Image = ptr.To(c.Image)
		}
		tr.Command, tr.Args = c.Command, c.Args
	}
	want := podPatchOf(v)
	if p := kaiwoPodPatch(j.TrainJob, want != nil); p != nil {
		if want == nil {
			want = &trainer.PodTemplatePatch{}
		}
		*p = *want
	}
	return nil
}

// viewRules are the TrainJob's rules beyond its view, on CREATE and, on UPDATE, where what they read
// changed: GPUs need spec.trainer.numNodes (the runtime's default is not visible to the webhook); Kaiwo's
// runtime patch holds only what the view shows; Kueue's is Kueue's (empty on CREATE, changed only by a
// controller); a patch of another manager is denied, since it could set volumes, tolerations or node
// selection that the policy cannot check; the initializers' Secrets are held to limits.allowedSecrets.
func (j *trainJob) viewRules(pol *policy.Policy, oldW workload, user string) field.ErrorList {
	var old *trainJob
	if oldW != nil {
		old, _ = oldW.(*trainJob)
	}
	var errs field.ErrorList
	if n, _ := templateGPUs(j.view); n > 0 && (j.Spec.Trainer == nil || j.Spec.Trainer.NumNodes == nil) {
		errs = append(errs, field.Required(trainerPath.Child("numNodes"), fmt.Sprintf(
			"a TrainJob with GPUs must set it: Kaiwo counts numNodes x resourcesPerNode, and the runtime's default is not visible to the webhook (or let %s plan it)", annotations.GPUs)))
	}
	for i, rp := range j.Spec.RuntimePatches {
		p := runtimePatchesPath.Index(i)
		if old != nil && slices.ContainsFunc(old.Spec.RuntimePatches, func(o trainer.RuntimePatch) bool {
			return o.Manager == rp.Manager && apiequality.Semantic.DeepEqual(o.TrainingRuntimeSpec, rp.TrainingRuntimeSpec)
		}) {
			continue // unchanged
		}
		switch rp.Manager {
		case kaiwoPatchManager:
			if !kaiwoPatchShape(rp) {
				errs = append(errs, field.Forbidden(p.Child("trainingRuntimeSpec"), fmt.Sprintf(
					"the runtime patch of manager %s is Kaiwo's: it may hold only the pod template of replicated job %q, with container %q only", kaiwoPatchManager, trainerNode, trainerNode)))
			}
		case kueuePatchManager:
			if old == nil && !kueuePatchEmpty(rp) || old != nil && !controllerOutside(user, j.Namespace) {
				errs = append(errs, field.Forbidden(p.Child("trainingRuntimeSpec"), fmt.Sprintf(
					"the runtime patch of manager %s is Kueue's: Kueue fills it when it admits the TrainJob", kueuePatchManager)))
			}
		default:
			if rp.TrainingRuntimeSpec != nil {
				errs = append(errs, field.Forbidden(p.Child("trainingRuntimeSpec"), fmt.Sprintf(
					"a runtime patch of manager %q could set volumes, tolerations or node selection that KaiwoPolicy %q cannot check: use Kaiwo's annotations (Kaiwo writes its own patch) or the TrainingRuntime", rp.Manager, pol.Name)))
			}
		}
	}
	if pol.Limits.AllowedSecrets != nil && (old == nil || !apiequality.Semantic.DeepEqual(old.Spec.Initializer, j.Spec.Initializer)) {
		errs = append(errs, initializerSecrets(j.Spec.Initializer, pol)...)
	}
	return errs
}

// kaiwoPatchShape reports whether Kaiwo's runtime patch holds no more than the view reads: the pod template
// of replicated job "node", without init containers or other containers.
func kaiwoPatchShape(rp trainer.RuntimePatch) bool {
	t := rp.TrainingRuntimeSpec
	if t == nil || t.Template == nil {
		return true
	}
	if t.Template.Metadata != nil {
		return false
	}
	if t.Template.Spec == nil {
		return true
	}
	for _, r := range t.Template.Spec.ReplicatedJobs {
		if r.Name != trainerNode || r.Template != nil && r.Template.Metadata != nil {
			return false
		}
		if r.Template == nil || r.Template.Spec == nil || r.Template.Spec.Template == nil || r.Template.Spec.Template.Spec == nil {
			continue
		}
		ps := r.Template.Spec.Template.Spec
		if len(ps.InitContainers) > 0 || slices.ContainsFunc(ps.Containers, func(c trainer.ContainerPatch) bool { return c.Name != trainerNode || len(c.Env) > 0 }) {
			return false
		}
	}
	return len(t.Template.Spec.ReplicatedJobs) <= 1
}

// kueuePatchEmpty: the patch Kueue's webhook adds on CREATE carries no replicated job yet.
func kueuePatchEmpty(rp trainer.RuntimePatch) bool {
	t := rp.TrainingRuntimeSpec
	return t == nil || t.Template == nil || t.Template.Metadata == nil && (t.Template.Spec == nil || len(t.Template.Spec.ReplicatedJobs) == 0)
}

// initializerSecrets checks the Secrets the dataset and model initializers read.
func initializerSecrets(in *trainer.Initializer, pol *policy.Policy) field.ErrorList {
	if in == nil {
		return nil
	}
	var errs field.ErrorList
	check := func(p *field.Path, name string) {
		if name != "" && !pol.Limits.SecretAllowed(name) {
			errs = append(errs, secretDenied(p, name, pol))
		}
	}
	each := func(p *field.Path, env []corev1.EnvVar, ref *corev1.LocalObjectReference) {
		for i, e := range env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				check(p.Child("env").Index(i).Child("valueFrom", "secretKeyRef", "name"), e.ValueFrom.SecretKeyRef.Name)
			}
		}
		if ref != nil {
			check(p.Child("secretRef", "name"), ref.Name)
		}
	}
	ip := field.NewPath("spec", "initializer")
	if d := in.Dataset; d != nil {
		each(ip.Child("dataset"), d.Env, d.SecretRef)
	}
	if m := in.Model; m != nil {
		each(ip.Child("model"), m.Env, m.SecretRef)
	}
	return errs
}
