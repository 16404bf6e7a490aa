package mutate

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// The rules below are pure functions of the final object and the policy. The mutation runs them on what it
// produced, so it refuses early; Validate runs them on the object as stored, after every mutating webhook.

// checkGPULimit holds the counted GPUs of the workload to limits.maxGpusPerWorkload. When old is not nil
// (an UPDATE), a count that did not grow passes: a policy tightened later does not lock existing objects.
// The error names the kaiwo.silogen.ai/gpus annotation when opts has it, else spec.
func checkGPULimit(w, old podSource, pol *policy.Policy, opts *Options) *field.Error {
	limit := int64(pol.Limits.MaxGPUsPerWorkload)
	if limit <= 0 {
		return nil
	}
	c, err := countGPUs(w)
	if err != nil {
		return err
	}
	if c.total <= limit {
		return nil
	}
	if old != nil {
		if oc, err := countGPUs(old); err == nil && c.total <= oc.total {
			return nil
		}
	}
	p := field.NewPath("spec")
	if opts != nil && opts.GPUs != nil {
		p = annotationsPath.Key(annotations.GPUs)
	}
	return field.Invalid(p, c.total, fmt.Sprintf("the workload's %d GPUs (%s) exceed limits.maxGpusPerWorkload (%d) of KaiwoPolicy %q",
		c.total, c.describe(), limit, pol.Name))
}

// containerLists calls f with every container of a pod template: init containers (native sidecars
// included), app containers, and ephemeral containers.
func containerLists(t template, f func(c *corev1.Container, p *field.Path)) {
	ps, sp := &t.spec.Spec, t.path.Child("spec")
	for i := range ps.InitContainers {
		f(&ps.InitContainers[i], sp.Child("initContainers").Index(i))
	}
	for i := range ps.Containers {
		f(&ps.Containers[i], sp.Child("containers").Index(i))
	}
	for i := range ps.EphemeralContainers {
		f((*corev1.Container)(&ps.EphemeralContainers[i].EphemeralContainerCommon), sp.Child("ephemeralContainers").Index(i))
	}
}

// checkVendors denies a GPU resource of a vendor outside limits.allowedVendors, or of another vendor than a
// locked gpuVendor, in any container of any template.
func checkVendors(ts []template, pol *policy.Policy) field.ErrorList {
	var errs field.ErrorList
	for _, t := range ts {
		containerLists(t, func(c *corev1.Container, p *field.Path) {
			for _, r := range containerGPUResources(c) {
				if q, ok := c.Resources.Limits[r]; ok {
					checkVendor(r, "limits", q, p, pol, &errs)
				} else {
					checkVendor(r, "requests", c.Resources.Requests[r], p, pol, &errs)
				}
			}
		})
	}
	return errs
}

// checkVendor adds the error of GPU resource r of a container at p, if its vendor is not allowed.
func checkVendor(r corev1.ResourceName, list string, q resource.Quantity, p *field.Path, pol *policy.Policy, errs *field.ErrorList) {
	vendor, ok := gpuVendorOf(r)
	if !ok || q.IsZero() {
		return
	}
	rp := p.Child("resources", list).Key(string(r))
	switch {
	case !pol.Limits.VendorAllowed(vendor):
		*errs = append(*errs, field.Invalid(rp, q.String(),
			fmt.Sprintf("vendor %q is not allowed by KaiwoPolicy %q: limits.allowedVendors is %s", vendor, pol.Name, quoteAll(pol.Limits.AllowedVendors))))
	case pol.IsLocked(policy.FieldGPUVendor) && vendor != pol.Defaults.GPUVendor:
		*errs = append(*errs, field.Invalid(rp, q.String(),
			fmt.Sprintf("vendor %q is locked out by KaiwoPolicy %q: defaults.gpuVendor is %q and cannot be changed", vendor, pol.Name, pol.Defaults.GPUVendor)))
	}
}

// checkSecrets denies every Secret a template reaches that limits.allowedSecrets does not allow: env
// secretKeyRef, envFrom secretRef, secret and projected volumes, volume sources that name a Secret, and
// imagePullSecrets other than the policy's own defaults.imagePullSecret.
func checkSecrets(ts []template, pol *policy.Policy) field.ErrorList {
	if pol.Limits.AllowedSecrets == nil {
		return nil
	}
	var errs field.ErrorList
	check := func(p *field.Path, name string) {
		if name != "" && !pol.Limits.SecretAllowed(name) {
			errs = append(errs, secretDenied(p, name, pol))
		}
	}
	for _, t := range ts {
		containerLists(t, func(c *corev1.Container, p *field.Path) {
			for i, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					check(p.Child("env").Index(i).Child("valueFrom", "secretKeyRef", "name"), e.ValueFrom.SecretKeyRef.Name)
				}
			}
			for i, e := range c.EnvFrom {
				if e.SecretRef != nil {
					check(p.Child("envFrom").Index(i).Child("secretRef", "name"), e.SecretRef.Name)
				}
			}
		})
		sp := t.path.Child("spec")
		for i, v := range t.spec.Spec.Volumes {
			volumeSecrets(v, sp.Child("volumes").Index(i), check)
		}
		for i, r := range t.spec.Spec.ImagePullSecrets {
			if r.Name != pol.Defaults.ImagePullSecret {
				check(sp.Child("imagePullSecrets").Index(i).Child("name"), r.Name)
			}
		}
	}
	return errs
}

// volumeSecrets calls f with every Secret a volume names.
func volumeSecrets(v corev1.Volume, p *field.Path, f func(*field.Path, string)) {
	ref := func(child string, r *corev1.LocalObjectReference) {
		if r != nil {
			f(p.Child(child, "secretRef", "name"), r.Name)
		}
	}
	s := v.VolumeSource
	switch {
	case s.Secret != nil:
		f(p.Child("secret", "secretName"), s.Secret.SecretName)
	case s.Projected != nil:
		for i, src := range s.Projected.Sources {
			if src.Secret != nil {
				f(p.Child("projected", "sources").Index(i).Child("secret", "name"), src.Secret.Name)
			}
		}
	case s.CSI != nil && s.CSI.NodePublishSecretRef != nil:
		f(p.Child("csi", "nodePublishSecretRef", "name"), s.CSI.NodePublishSecretRef.Name)
	case s.AzureFile != nil:
		f(p.Child("azureFile", "secretName"), s.AzureFile.SecretName)
	case s.CephFS != nil:
		ref("cephfs", s.CephFS.SecretRef)
	case s.Cinder != nil:
		ref("cinder", s.Cinder.SecretRef)
	case s.FlexVolume != nil:
		ref("flexVolume", s.FlexVolume.SecretRef)
	case s.ISCSI != nil:
		ref("iscsi", s.ISCSI.SecretRef)
	case s.RBD != nil:
		ref("rbd", s.RBD.SecretRef)
	case s.ScaleIO != nil:
		ref("scaleIO", s.ScaleIO.SecretRef)
	case s.StorageOS != nil:
		if s.StorageOS.SecretRef != nil {
			f(p.Child("storageos", "secretRef", "name"), s.StorageOS.SecretRef.Name)
		}
	}
}

// lockedTemplate is what the locks of the policy allow in a pod template.
type lockedTemplate struct {
	pol *policy.Policy
	// tolerations a template may carry where tolerations are locked: the policy's and its podTemplatePatch's.
	tolerations []corev1.Toleration
	// gpuModel is the node label requirement kaiwo.silogen.ai/gpu-model adds to the locked affinity.
	gpuModel *corev1.NodeSelectorRequirement
	// kueueStart allows tolerations beyond the policy's in the update that unsuspends a workload, made by a
	// controller's service account from another namespace: Kueue admitting it adds its ResourceFlavor's.
	kueueStart bool
}

func newLockedTemplate(pol *policy.Policy, opts *Options) *lockedTemplate {
	l := &lockedTemplate{pol: pol, tolerations: pol.Defaults.Tolerations}
	if pol.IsLocked(policy.FieldTolerations) && bytes.Contains(pol.PodTemplatePatch, []byte(`"tolerations"`)) {
		// The admin's patch may set tolerations of its own: they are the policy's too.
		empty := corev1.PodTemplateSpec{}
		if _, err := mergePodTemplatePatch(template{path: field.NewPath("podTemplatePatch"), spec: &empty}, pol.PodTemplatePatch, pol.Name); err == nil {
			l.tolerations = append(slices.Clone(l.tolerations), empty.Spec.Tolerations...)
		}
	}
	l.gpuModel = modelRequirement(pol, opts)
	return l
}

// modelRequirement is the node label requirement kaiwo.silogen.ai/gpu-model adds, or nil.
func modelRequirement(pol *policy.Policy, opts *Options) *corev1.NodeSelectorRequirement {
	if opts == nil || opts.GPUModel == "" {
		return nil
	}
	vendor := cmp.Or(opts.GPUVendor, pol.Defaults.GPUVendor, "amd")
	return &corev1.NodeSelectorRequirement{Key: productLabels[vendor], Operator: corev1.NodeSelectorOpIn, Values: []string{opts.GPUModel}}
}

// check compares the locked tolerations, nodeSelector and affinity with the final template t.
// Tolerations: exactly the policy's (order aside), none removed and none added, since any other toleration
// lets the pod onto nodes the admin kept it off. nodeSelector: the policy's entries with their values;
// more entries only narrow where the pod runs and pass. Affinity: the policy's, with the node label
// requirement of kaiwo.silogen.ai/gpu-model in every required term when the annotation asks for a model.
// Under any of these locks, nodeName (which skips the scheduler) is denied. Under a locked priorityClass, the
// pod's priorityClassName is unset or that class; under a locked storage, every generic ephemeral volume
// is of the policy's size and class.
func (l *lockedTemplate) check(t template) field.ErrorList {
	var errs field.ErrorList
	pol, ps, sp := l.pol, &t.spec.Spec, t.path.Child("spec")
	if pol.IsLocked(policy.FieldTolerations) {
		for _, want := range pol.Defaults.Tolerations {
			if !slices.ContainsFunc(ps.Tolerations, func(have corev1.Toleration) bool { return apiequality.Semantic.DeepEqual(have, want) }) {
				errs = append(errs, field.Required(sp.Child("tolerations"), fmt.Sprintf("toleration %s is locked by KaiwoPolicy %q (defaults.tolerations) and cannot be removed", describeToleration(want), pol.Name)))
			}
		}
		for i, have := range ps.Tolerations {
			if !l.kueueStart && !apiServerToleration(have) && !slices.ContainsFunc(l.tolerations, func(want corev1.Toleration) bool { return apiequality.Semantic.DeepEqual(have, want) }) {
				errs = append(errs, field.Forbidden(sp.Child("tolerations").Index(i), fmt.Sprintf("toleration %s is not one of KaiwoPolicy %q's locked defaults.tolerations; tolerations are locked", describeToleration(have), pol.Name)))
			}
		}
	}
	if pol.IsLocked(policy.FieldNodeSelector) {
		for _, k := range slices.Sorted(maps.Keys(pol.Defaults.NodeSelector)) {
			if v, ok := ps.NodeSelector[k]; !ok || v != pol.Defaults.NodeSelector[k] {
				errs = append(errs, field.Invalid(sp.Child("nodeSelector").Key(k), v,
					fmt.Sprintf("is locked by KaiwoPolicy %q: defaults.nodeSelector sets %s=%s", pol.Name, k, pol.Defaults.NodeSelector[k])))
			}
		}
	}
	if pc := ps.PriorityClassName; pc != "" && pol.IsLocked(policy.FieldPriorityClass) && pc != pol.Defaults.PriorityClass {
		errs = append(errs, field.Invalid(sp.Child("priorityClassName"), pc, fmt.Sprintf(
			"is locked by KaiwoPolicy %q: defaults.priorityClass is %q and cannot be changed; a pod priority class lets the scheduler preempt other pods whatever Kueue's priority is: leave it unset or set it to %q",
			pol.Name, pol.Defaults.PriorityClass, pol.Defaults.PriorityClass)))
	}
	if ps.NodeName != "" && (pol.IsLocked(policy.FieldTolerations) || pol.IsLocked(policy.FieldNodeSelector) || pol.IsLocked(policy.FieldAffinity)) {
		errs = append(errs, field.Forbidden(sp.Child("nodeName"), fmt.Sprintf("a pod bound to a node skips the scheduler, and with it the tolerations, nodeSelector and affinity KaiwoPolicy %q locks; remove nodeName", pol.Name)))
	}
	errs = append(errs, checkLockedStorage(t, pol)...)
	if pol.IsLocked(policy.FieldAffinity) && !l.affinityAllowed(ps.Affinity) {
		errs = append(errs, field.Forbidden(sp.Child("affinity"), fmt.Sprintf("is locked by KaiwoPolicy %q: defaults.affinity applies and cannot be replaced", pol.Name)))
	}
	return errs
}

// affinityAllowed: the policy's affinity, or that with the gpu-model requirement Kaiwo adds.
func (l *lockedTemplate) affinityAllowed(a *corev1.Affinity) bool {
	want := l.pol.Defaults.Affinity
	if apiequality.Semantic.DeepEqual(a, want) {
		return true
	}
	if l.gpuModel == nil {
		return false
	}
	ps := corev1.PodSpec{Affinity: want.DeepCopy()}
	requireNodeLabel(&ps, l.gpuModel.Key, l.gpuModel.Values[0])
	return apiequality.Semantic.DeepEqual(a, ps.Affinity)
}

func describeToleration(t corev1.Toleration) string {
	s := fmt.Sprintf("{key: %q, operator: %q, value: %q, effect: %q", t.Key, t.Operator, t.Value, t.Effect)
	if t.TolerationSeconds != nil {
		s += fmt.Sprintf(", tolerationSeconds: %d", *t.TolerationSeconds)
	}
	return s + "}"
}

// templateRules are the rules about pod templates: vendors, device claims, Secrets and the locked
// scheduling fields.
func templateRules(ts []template, pol *policy.Policy, l *lockedTemplate) field.ErrorList {
	errs := checkVendors(ts, pol)
	errs = append(errs, checkClaims(ts, pol)...)
	errs = append(errs, checkSecrets(ts, pol)...)
	for _, t := range ts {
		errs = append(errs, l.check(t)...)
	}
	return errs
}
