package webhookrules

import (
	"fmt"
	"strings"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
)

// The match conditions, in CEL. Every field access is guarded with has(): an evaluation error would deny
// the request under failurePolicy Fail.

// gpuPattern matches a GPU resource name as the server counts GPUs: amd.com/ or nvidia.com/ gpu... or
// mig-... (MIG slices and time-sliced GPUs too).
const gpuPattern = `^(amd|nvidia)[.]com/(gpu|mig-)`

// hasGPU is the body of .exists(t, ...) over pod templates t: a container or init container asks for a GPU
// resource in its limits or requests, or claims devices through dynamic resource allocation.
var hasGPU = `  has(t.spec) &&
  ((has(t.spec.containers) ? t.spec.containers : []) +
    (has(t.spec.initContainers) ? t.spec.initContainers : [])).exists(c,
    has(c.resources) && (
      (has(c.resources.claims) && size(c.resources.claims) > 0) ||
      (has(c.resources.limits) && c.resources.limits.exists(r, r.matches('` + gpuPattern + `'))) ||
      (has(c.resources.requests) && c.resources.requests.exists(r, r.matches('` + gpuPattern + `'))))))`

// managed: the object carries a Kaiwo annotation or the managed label (the mutating webhooks' opt-in).
var managed = fmt.Sprintf(`(has(object.metadata.annotations) &&
  object.metadata.annotations.exists(k, k.startsWith('%[1]s'))) ||
(has(object.metadata.labels) &&
  '%[2]s' in object.metadata.labels &&
  object.metadata.labels['%[2]s'] == 'true') ||
`, annotations.Prefix, annotations.Managed)

// managedOrQueued widens managed for the validating webhooks, so that a later change cannot step outside
// it: any Kaiwo annotation or label, or the Kueue queue label, on the object or on the old object.
var managedOrQueued = fmt.Sprintf(`(has(object.metadata.annotations) &&
  object.metadata.annotations.exists(k, k.startsWith('%[1]s'))) ||
(has(object.metadata.labels) &&
  object.metadata.labels.exists(k, k.startsWith('%[1]s') ||
    k == '%[2]s')) ||
(oldObject != null && (
  (has(oldObject.metadata.annotations) &&
    oldObject.metadata.annotations.exists(k, k.startsWith('%[1]s'))) ||
  (has(oldObject.metadata.labels) &&
    oldObject.metadata.labels.exists(k, k.startsWith('%[1]s') ||
      k == '%[2]s')))) ||
`, annotations.Prefix, annotations.KueueQueueName)

// scaleUp: a Scale's replicas grow.
const scaleUp = `(has(object.spec) && has(object.spec.replicas) ? object.spec.replicas : 0) >
(oldObject != null && has(oldObject.spec) && has(oldObject.spec.replicas) ?
  oldObject.spec.replicas : 0)`

// notFromAController: the object is not one a controller creates for a workload that was checked: a
// controller owner reference to one of owners ("apiVersion/kind"), in a request of a system: user (not
// anonymous) or a service account of another namespace. The server decides the same
// (Registry.ValidateUnhandledBy).
func notFromAController(owners []string) string {
	return "!(" + ownedBy(owners) + " &&\n" + byController + ")"
}

// notCreatedByAController is notFromAController for a handled kind, whose owners' objects the server leaves
// alone on CREATE only (fromCheckedTemplate): an UPDATE is sent. With skipControllerUpdates (a Pod), a controller's
// UPDATE of an owned object is not sent either (the busy Pod path), but a team user's is: the server holds it
// to the template rules the stored object kept (a toleration added to a pending Pod).
func notCreatedByAController(owners []string, skipControllerUpdates bool) string {
	if skipControllerUpdates {
		return notFromAController(owners)
	}
	return "!(" + ownedBy(owners) + " &&\n  oldObject == null &&\n" + byController + ")"
}

// ownedBy: the object's controller owner reference names one of owners.
func ownedBy(owners []string) string {
	quoted := make([]string, len(owners))
	for i, o := range owners {
		quoted[i] = "'" + o + "'"
	}
	return `has(object.metadata.ownerReferences) &&
  object.metadata.ownerReferences.exists(o,
    has(o.controller) && o.controller &&
    (o.apiVersion + '/' + o.kind) in [` + strings.Join(quoted, ", ") + `])`
}

// byController: the request is a controller's, not a team user's (mutate's systemRequest).
const byController = `  request.userInfo.username.startsWith('system:') &&
  !request.userInfo.username.startsWith('system:anonymous') &&
  !request.userInfo.username.startsWith('system:serviceaccount:' + request.namespace + ':')`

// queueLabelAt: the Kueue queue label is in the label map at the dotted path, on the object or the old one
// (a CronJob's job template, whose labels its Jobs take).
func queueLabelAt(path string) string {
	at := func(root string) string {
		g := guards(root, path)
		return strings.Join(g, " &&\n  ") + " &&\n  '" + annotations.KueueQueueName + "' in " + root + "." + path
	}
	return "(" + at("object") + ") ||\n(oldObject != null &&\n  " + at("oldObject") + ") ||\n"
}

// createdAnnotationsAt is the annotation map beside a label map of KindInfo.QueueLabels: the objects the
// kind's controller creates take both (a CronJob's Jobs, from spec.jobTemplate.metadata).
func createdAnnotationsAt(labelsPath string) string {
	return strings.TrimSuffix(labelsPath, "labels") + "annotations"
}

// kaiwoAnnotationAt: a Kaiwo annotation is in the annotation map at the dotted path of the object, or with
// old, of the old object (the server denies them there: mutate.checkCreatedAnnotations).
func kaiwoAnnotationAt(path string, old bool) string {
	at := func(root string) string {
		return strings.Join(guards(root, path), " &&\n  ") + " &&\n  " + root + "." + path + ".exists(k, k.startsWith('" + annotations.Prefix + "'))"
	}
	if !old {
		return "(" + at("object") + ") ||\n"
	}
	return "(" + at("object") + ") ||\n(oldObject != null &&\n  " + at("oldObject") + ") ||\n"
}

// notPartOf: the object has no controller owner reference to one of owners ("apiVersion/kind"), whoever
// makes the request: the mutating webhook leaves a part of another workload alone (mutate.Mutate).
func notPartOf(owners []string) string { return "!(" + ownedBy(owners) + ")" }

// TemplatesGPU is the CEL condition that one of the pod templates at paths asks for a GPU. A path is
// dotted field names from the object; "[]" after a list field means each of its items, "{}" after a map
// field each of its values (one such level at most); "" is the object itself (a Pod). A path with the
// suffix mutate.ResourcesPath is a ResourceRequirements instead (a kind without a pod template: a
// TrainJob's spec.trainer.resourcesPerNode), which asks for a GPU itself.
func TemplatesGPU(paths []string) (string, error) {
	var templates, resources []string
	for _, p := range paths {
		r, isResources := strings.CutSuffix(p, mutate.ResourcesPath)
		part, err := templateList(r)
		if err != nil {
			return "", err
		}
		if isResources {
			resources = append(resources, part)
		} else {
			templates = append(templates, part)
		}
	}
	var exprs []string
	if len(templates) > 0 {
		exprs = append(exprs, joinLists(templates)+".exists(t,\n"+hasGPU)
	}
	if len(resources) > 0 {
		exprs = append(exprs, joinLists(resources)+".exists(r,\n"+resourcesGPU)
	}
	return strings.Join(exprs, " ||\n"), nil
}

// resourcesGPU is the body of .exists(r, ...) over ResourceRequirements r: a GPU resource in its limits or
// requests, or a device claim.
var resourcesGPU = `  (has(r.claims) && size(r.claims) > 0) ||
  (has(r.limits) && r.limits.exists(k, k.matches('` + gpuPattern + `'))) ||
  (has(r.requests) && r.requests.exists(k, k.matches('` + gpuPattern + `'))))`

// joinLists concatenates CEL lists.
func joinLists(parts []string) string {
	if len(parts) == 1 {
		return parts[0]
	}
	return "(" + strings.Join(parts, " +\n  ") + ")"
}

// templateList is a CEL list of the templates at path p (see TemplatesGPU), empty where they are not set.
func templateList(p string) (string, error) {
	if p == "" {
		return "(has(object.spec) ? [object] : [])", nil
	}
	head, tail, each := p, "", ""
	for _, mark := range []string{"[]", "{}"} {
		if h, t, ok := strings.Cut(p, mark); ok {
			head, tail, each = h, strings.TrimPrefix(t, "."), mark
			break
		}
	}
	if strings.Contains(tail, "[]") || strings.Contains(tail, "{}") || strings.Contains(head, "{}") {
		return "", fmt.Errorf("template path %q: one list or map level at most", p)
	}
	guard := guards("object", head)
	switch each {
	case "":
		return choose(guard, "[object."+head+"]"), nil
	case "[]":
		if tail == "" {
			return choose(guard, "object."+head), nil
		}
		return choose(guard, fmt.Sprintf("object.%s.map(g, %s, g.%s)", head, strings.Join(guards("g", tail), " && "), tail)), nil
	default: // a map: its keys, then the value of each
		m := "object." + head
		if tail == "" {
			return choose(guard, fmt.Sprintf("%s.map(k, %s[k])", m, m)), nil
		}
		return choose(guard, fmt.Sprintf("%s.map(k, %s, %s[k].%s)", m, strings.Join(guards(m+"[k]", tail), " && "), m, tail)), nil
	}
}

// choose is (guard ? value : []), on one line when it is short, else with the guards wrapped.
func choose(guard []string, value string) string {
	if one := "(" + strings.Join(guard, " && ") + " ? " + value + " : [])"; len(one) <= 100 {
		return one
	}
	var lines []string
	cur := "(" + guard[0]
	for _, g := range guard[1:] {
		if len(cur)+4+len(g) > 72 {
			lines = append(lines, cur+" &&")
			cur = "    " + g
			continue
		}
		cur += " && " + g
	}
	lines = append(lines, cur+" ?", "    "+value+" : [])")
	return strings.Join(lines, "\n")
}

// guards are has() of each prefix of the dotted path from root: has(root.a), has(root.a.b).
func guards(root, path string) []string {
	var out []string
	cur := root
	for _, f := range strings.Split(path, ".") {
		cur += "." + f
		out = append(out, "has("+cur+")")
	}
	return out
}
