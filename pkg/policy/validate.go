package policy

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/silogen/kaiwo-webhook/api/v1alpha1"
)

var (
	specPath     = field.NewPath("spec")
	defaultsPath = specPath.Child("defaults")
	limitsPath   = specPath.Child("limits")
	patchPath    = specPath.Child("podTemplatePatch")

	modes   = []string{string(v1alpha1.ModeOptIn), string(v1alpha1.ModeEnforce)}
	vendors = []string{string(v1alpha1.VendorAMD), string(v1alpha1.VendorNVIDIA)}
)

// Validate checks what the CRD schema cannot (or what offline YAML never met a
// schema for): names, label selectors, quantities, tolerations, node selectors
// and affinity, Secret name patterns, locked fields, the pod template patch, and
// that the defaults lie within the policy's own limits.
func Validate(p *v1alpha1.KaiwoPolicy) field.ErrorList {
	var errs field.ErrorList
	if p.Name == "" {
		errs = append(errs, field.Required(field.NewPath("metadata", "name"), "must name the policy"))
	} else {
		errs = append(errs, dnsSubdomain(field.NewPath("metadata", "name"), p.Name)...)
	}
	s := &p.Spec
	errs = append(errs, validateSelector(specPath.Child("namespaceSelector"), s.NamespaceSelector)...)
	if s.Mode != "" && !slices.Contains(modes, string(s.Mode)) {
		errs = append(errs, field.NotSupported(specPath.Child("mode"), s.Mode, modes))
	}
	if s.Defaults != nil {
		errs = append(errs, validateDefaults(s.Defaults)...)
	}
	if s.Limits != nil {
		errs = append(errs, validateLimits(s.Limits)...)
		errs = append(errs, validateWithinLimits(s.Defaults, s.Limits)...)
	}
	errs = append(errs, validateLocked(s.Locked, s.Defaults)...)
	errs = append(errs, validatePatch(s.PodTemplatePatch)...)
	if lq := s.LocalQueue; lq != nil && lq.ClusterQueue != "" {
		errs = append(errs, dnsSubdomain(specPath.Child("localQueue", "clusterQueue"), lq.ClusterQueue)...)
	}
	return errs
}

func validateSelector(p *field.Path, sel *metav1.LabelSelector) field.ErrorList {
	if sel == nil {
		return field.ErrorList{field.Required(p, "must select namespaces; {} selects every namespace")}
	}
	var errs field.ErrorList
	ops := []string{string(metav1.LabelSelectorOpIn), string(metav1.LabelSelectorOpNotIn), string(metav1.LabelSelectorOpExists), string(metav1.LabelSelectorOpDoesNotExist)}
	for i, r := range sel.MatchExpressions {
		if !slices.Contains(ops, string(r.Operator)) {
			errs = append(errs, field.NotSupported(p.Child("matchExpressions").Index(i).Child("operator"), r.Operator, ops))
		}
	}
	// The apimachinery check says "not a valid selector operator" without the
	// allowed values; keep the message above instead.
	for _, e := range metav1validation.ValidateLabelSelector(sel, metav1validation.LabelSelectorValidationOptions{}, p) {
		if !slices.ContainsFunc(errs, func(o *field.Error) bool { return o.Field == e.Field }) {
			errs = append(errs, e)
		}
	}
	if len(errs) == 0 {
		if _, err := metav1.LabelSelectorAsSelector(sel); err != nil {
			errs = append(errs, field.Invalid(p, sel.String(), err.Error()))
		}
	}
	return errs
}

func validateDefaults(d *v1alpha1.PolicyDefaults) field.ErrorList {
	var errs field.ErrorList
	p := defaultsPath
	if d.Queue != "" {
		errs = append(errs, labelValueName(p.Child("queue"), d.Queue, "LocalQueue")...)
	}
	if d.GPUVendor != "" && !slices.Contains(vendors, string(d.GPUVendor)) {
		errs = append(errs, field.NotSupported(p.Child("gpuVendor"), d.GPUVendor, vendors))
	}
	if d.GPUsPerNode != nil && *d.GPUsPerNode <= 0 {
		errs = append(errs, field.Invalid(p.Child("gpusPerNode"), *d.GPUsPerNode, "must be greater than 0"))
	}
	if from := d.GPUsPerNodeFrom; from != nil {
		fp := p.Child("gpusPerNodeFrom")
		if d.GPUsPerNode != nil {
			errs = append(errs, field.Forbidden(fp, "must not be set together with gpusPerNode"))
		}
		if from.ResourceFlavor == "" {
			errs = append(errs, field.Required(fp.Child("resourceFlavor"), "must name a Kueue ResourceFlavor"))
		} else {
			errs = append(errs, dnsSubdomain(fp.Child("resourceFlavor"), from.ResourceFlavor)...)
		}
		if from.NodeLabel == "" {
			errs = append(errs, field.Required(fp.Child("nodeLabel"), "must name a node label of the ResourceFlavor"))
		} else {
			errs = append(errs, qualifiedName(fp.Child("nodeLabel"), from.NodeLabel)...)
		}
	}
	errs = append(errs, positiveQuantity(p.Child("cpuPerGpu"), d.CPUPerGPU, false)...)
	errs = append(errs, positiveQuantity(p.Child("memoryPerGpu"), d.MemoryPerGPU, true)...)
	errs = append(errs, positiveQuantity(p.Child("shmSize"), d.ShmSize, true)...)
	if ttl := d.TTLSecondsAfterFinished; ttl != nil && *ttl < 0 {
		errs = append(errs, field.Invalid(p.Child("ttlSecondsAfterFinished"), *ttl, "must be greater than or equal to 0"))
	}
	if d.PriorityClass != "" {
		errs = append(errs, labelValueName(p.Child("priorityClass"), d.PriorityClass, "WorkloadPriorityClass")...)
	}
	if d.ImagePullSecret != "" {
		errs = append(errs, dnsSubdomain(p.Child("imagePullSecret"), d.ImagePullSecret)...)
	}
	errs = append(errs, validateTolerations(p.Child("tolerations"), d.Tolerations)...)
	errs = append(errs, metav1validation.ValidateLabels(d.NodeSelector, p.Child("nodeSelector"))...)
	errs = append(errs, validateAffinity(p.Child("affinity"), d.Affinity)...)
	if st := d.Storage; st != nil {
		errs = append(errs, positiveQuantity(p.Child("storage", "size"), st.Size, true)...)
		if st.StorageClassName != "" {
			errs = append(errs, dnsSubdomain(p.Child("storage", "storageClassName"), st.StorageClassName)...)
		}
	}
	return errs
}

func validateLimits(l *v1alpha1.PolicyLimits) field.ErrorList {
	var errs field.ErrorList
	if m := l.MaxGPUsPerWorkload; m != nil && *m <= 0 {
		errs = append(errs, field.Invalid(limitsPath.Child("maxGpusPerWorkload"), *m, "must be greater than 0"))
	}
	errs = append(errs, positiveQuantity(limitsPath.Child("maxStoragePerWorkload"), l.MaxStoragePerWorkload, true)...)
	vp := limitsPath.Child("allowedVendors")
	if l.AllowedVendors != nil && len(l.AllowedVendors) == 0 {
		errs = append(errs, field.Required(vp, "must name at least one vendor (amd, nvidia), or be left out for any"))
	}
	for i, v := range l.AllowedVendors {
		if !slices.Contains(vendors, string(v)) {
			errs = append(errs, field.NotSupported(vp.Index(i), v, vendors))
		} else if slices.Index(l.AllowedVendors, v) < i {
			errs = append(errs, field.Duplicate(vp.Index(i), v))
		}
	}
	qp := limitsPath.Child("allowedQueues")
	if l.AllowedQueues != nil && len(l.AllowedQueues) == 0 {
		errs = append(errs, field.Required(qp, "must name at least one LocalQueue, or be left out for any"))
	}
	for i, q := range l.AllowedQueues {
		if qerrs := labelValueName(qp.Index(i), q, "LocalQueue"); len(qerrs) > 0 {
			errs = append(errs, qerrs...)
		} else if slices.Index(l.AllowedQueues, q) < i {
			errs = append(errs, field.Duplicate(qp.Index(i), q))
		}
	}
	sp := limitsPath.Child("allowedSecrets")
	if l.AllowedSecrets != nil && len(l.AllowedSecrets) == 0 {
		errs = append(errs, field.Required(sp, "must name at least one Secret pattern, or be left out for any"))
	}
	for i, pattern := range l.AllowedSecrets {
		switch {
		case pattern == "":
			errs = append(errs, field.Invalid(sp.Index(i), pattern, "must be a non-empty pattern of Secret names"))
		case !validPattern(pattern):
			errs = append(errs, field.Invalid(sp.Index(i), pattern, `must be a valid pattern of Secret names in path.Match syntax: "*" (any characters), "?" (one character), "[a-z]" (a class), "\\" escapes`))
		case slices.Index(l.AllowedSecrets, pattern) < i:
			errs = append(errs, field.Duplicate(sp.Index(i), pattern))
		}
	}
	return errs
}

// validPattern reports whether pattern is well-formed for path.Match, which
// checks the whole pattern even when the name does not match.
func validPattern(pattern string) bool {
	_, err := path.Match(pattern, "")
	return err == nil
}

// validateWithinLimits checks the policy's own defaults against its own limits; a
// default that its own limits forbid would deny every workload that relies on it.
func validateWithinLimits(d *v1alpha1.PolicyDefaults, l *v1alpha1.PolicyLimits) field.ErrorList {
	if d == nil {
		return nil
	}
	var errs field.ErrorList
	if d.GPUVendor != "" && len(l.AllowedVendors) > 0 && !slices.Contains(l.AllowedVendors, d.GPUVendor) {
		errs = append(errs, field.Invalid(defaultsPath.Child("gpuVendor"), d.GPUVendor,
			fmt.Sprintf("must be one of spec.limits.allowedVendors: %s", joinQuoted(l.AllowedVendors))))
	}
	if d.Queue != "" && len(l.AllowedQueues) > 0 && !slices.Contains(l.AllowedQueues, d.Queue) {
		errs = append(errs, field.Invalid(defaultsPath.Child("queue"), d.Queue,
			fmt.Sprintf("must be one of spec.limits.allowedQueues: %s", joinQuoted(l.AllowedQueues))))
	}
	return errs
}

func validateLocked(locked []v1alpha1.LockedField, d *v1alpha1.PolicyDefaults) field.ErrorList {
	var errs field.ErrorList
	lp := specPath.Child("locked")
	for i, f := range locked {
		switch {
		case !slices.Contains(LockableFields, string(f)):
			errs = append(errs, field.NotSupported(lp.Index(i), f, LockableFields))
		case slices.Index(locked, f) < i:
			errs = append(errs, field.Duplicate(lp.Index(i), f))
		case !defaultSet(d, string(f)):
			errs = append(errs, field.Invalid(lp.Index(i), f,
				fmt.Sprintf("must name a field set in spec.defaults, the value it is locked to; spec.defaults.%s is not set", f)))
		}
	}
	return errs
}

// defaultSet reports whether the lockable default name is set in d.
func defaultSet(d *v1alpha1.PolicyDefaults, name string) bool {
	if d == nil {
		return false
	}
	switch name {
	case FieldQueueing: // locked to the built-in rule and defaults.servingQueueing, which has a default
		return true
	case FieldQueue:
		return d.Queue != ""
	case FieldGPUVendor:
		return d.GPUVendor != ""
	case FieldShmSize:
		return d.ShmSize != nil
	case FieldStorage:
		return d.Storage != nil
	case FieldTTL:
		return d.TTLSecondsAfterFinished != nil
	case FieldPriorityClass:
		return d.PriorityClass != ""
	case FieldImagePullSecret:
		return d.ImagePullSecret != ""
	case FieldTolerations:
		return d.Tolerations != nil
	case FieldNodeSelector:
		return d.NodeSelector != nil
	case FieldAffinity:
		return d.Affinity != nil
	}
	return false
}

// patchJSON returns the patch as JSON, or nil when there is none.
func patchJSON(ext *runtime.RawExtension) []byte {
	if ext == nil {
		return nil
	}
	raw := ext.Raw
	if len(raw) == 0 && ext.Object != nil {
		var err error
		if raw, err = json.Marshal(ext.Object); err != nil {
			return []byte(fmt.Sprintf("%q", err.Error())) // not an object: validatePatch says so
		}
	}
	if t := strings.TrimSpace(string(raw)); t == "" || t == "null" {
		return nil
	}
	return raw
}

// validatePatch applies the patch to an empty pod template and strictly decodes
// the result, so a patch that would fail (or silently drop a misspelt field) on
// every workload is caught when the policy is written.
func validatePatch(ext *runtime.RawExtension) field.ErrorList {
	raw := patchJSON(ext)
	if raw == nil {
		return nil
	}
	const must = "must be a strategic merge patch of a pod template (metadata, spec)"
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return field.ErrorList{field.Invalid(patchPath, string(raw), must+": not an object")}
	}
	merged, err := strategicpatch.StrategicMergeMapPatchUsingLookupPatchMeta(map[string]any{}, obj, PodTemplatePatchMeta)
	if err != nil {
		return field.ErrorList{field.Invalid(patchPath, string(raw), must+": "+err.Error())}
	}
	out, err := json.Marshal(merged)
	if err != nil {
		return field.ErrorList{field.Invalid(patchPath, string(raw), must+": "+err.Error())}
	}
	if err := decodePodTemplateSpec(out); err != nil {
		return field.ErrorList{field.Invalid(patchPath, string(raw), must+": "+err.Error())}
	}
	return nil
}

func positiveQuantity(p *field.Path, q *resource.Quantity, wholeBytes bool) field.ErrorList {
	if q == nil {
		return nil
	}
	if q.Sign() <= 0 {
		return field.ErrorList{field.Invalid(p, q.String(), "must be greater than 0")}
	}
	if wholeBytes && q.MilliValue()%1000 != 0 {
		return field.ErrorList{field.Invalid(p, q.String(), "must be a whole number of bytes, e.g. 32Gi")}
	}
	return nil
}

func dnsSubdomain(p *field.Path, name string) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Subdomain(name) {
		errs = append(errs, field.Invalid(p, name, msg))
	}
	return errs
}

// labelValueName checks an object name that also becomes a label value (the
// queue and priority class names become kueue.x-k8s.io labels).
func labelValueName(p *field.Path, name, kind string) field.ErrorList {
	if len(validation.IsDNS1123Subdomain(name)) > 0 || len(validation.IsValidLabelValue(name)) > 0 {
		return field.ErrorList{field.Invalid(p, name, fmt.Sprintf("must be a %s name: lowercase alphanumerics, '-' and '.', at most 63 characters, starting and ending with an alphanumeric", kind))}
	}
	return nil
}

func qualifiedName(p *field.Path, name string) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsQualifiedName(name) {
		errs = append(errs, field.Invalid(p, name, msg))
	}
	return errs
}

func hasErrorUnder(errs field.ErrorList, p *field.Path) bool {
	prefix := p.String()
	return slices.ContainsFunc(errs, func(e *field.Error) bool {
		return e.Field == prefix || strings.HasPrefix(e.Field, prefix+".") || strings.HasPrefix(e.Field, prefix+"[")
	})
}

func joinQuoted[S ~string](l []S) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(string(s))
	}
	return strings.Join(q, ", ")
}
