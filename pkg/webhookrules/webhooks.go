package webhookrules

import (
	"fmt"
	"strings"

	"github.com/silogen/kaiwo-webhook/pkg/mutate"
)

// Where the server serves the webhooks (server.MutatePath and the others; the server's tests check the two
// agree through the manifests).
const (
	mutatePath         = "/mutate"
	validatePath       = "/validate"
	validatePolicyPath = "/validate-kaiwopolicy"
)

// webhook is one entry of a webhook configuration.
type webhook struct {
	name, path string
	comment    string // above the rule, wrapped
	group      string
	version    string
	resource   string
	ops        []string
	cluster    bool // a cluster-scoped resource: no namespaceSelector
	conditions []condition
	// failClosed keeps failurePolicy Fail in the chart too, whatever its values say.
	failClosed bool
	reinvoke   bool // reinvocationPolicy IfNeeded (mutating)
}

type condition struct{ name, expr string }

// mutatingWebhooks: one per handled kind, with its own rule and match condition, in registry order.
func mutatingWebhooks(r *mutate.Registry) ([]webhook, error) {
	var out []webhook
	for _, k := range r.Kinds() {
		gpu, err := TemplatesGPU(k.Templates)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		asked := managed
		for _, p := range k.QueueLabels {
			asked += kaiwoAnnotationAt(createdAnnotationsAt(p), false)
		}
		w := webhook{name: k.Resource + ".kaiwo.silogen.ai", path: mutatePath, group: k.GVK.Group, version: k.GVK.Version,
			resource: k.Resource, ops: []string{"CREATE"}, reinvoke: true,
			conditions: append([]condition{{"kaiwo-managed-or-gpu", asked + gpu}}, owned(k)...)}
		if k.Update {
			w.ops = append(w.ops, "UPDATE")
		} else {
			w.comment = fmt.Sprintf("CREATE only: a %s's pod templates cannot change after create.", k.GVK.Kind)
		}
		if len(k.PartOf) > 0 {
			w.comment = strings.TrimSpace(w.comment + " " + fmt.Sprintf("A %s that a %s controls is a part of that workload, checked as it: not sent.", k.GVK.Kind, strings.Join(k.PartOf, " or ")))
			w.conditions = append(w.conditions, condition{"not-part-of-a-workload", notPartOf(k.PartOf)})
		}
		out = append(out, w)
	}
	return out, nil
}

// validatingWebhooks: the KaiwoPolicy webhook; then CREATE and UPDATE of each handled kind, the scale
// subresource of those that have one, and each GPU-capable kind not handled, in registry order.
func validatingWebhooks(r *mutate.Registry) ([]webhook, error) {
	out := []webhook{{name: "kaiwopolicies.kaiwo.silogen.ai", path: validatePolicyPath, group: "kaiwo.silogen.ai", version: "v1alpha1",
		resource: "kaiwopolicies", ops: []string{"CREATE", "UPDATE"}, cluster: true, failClosed: true}}
	var scaled []webhook
	for _, k := range r.Kinds() {
		gpu, err := TemplatesGPU(k.Templates)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		queued := managedOrQueued
		for _, p := range k.QueueLabels {
			queued += queueLabelAt(p) + kaiwoAnnotationAt(createdAnnotationsAt(p), true)
		}
		v := webhook{name: k.Resource + ".validate.kaiwo.silogen.ai", path: validatePath, group: k.GVK.Group,
			version: k.GVK.Version, resource: k.Resource, ops: []string{"CREATE", "UPDATE"}, comment: validatingNote(k),
			conditions: append([]condition{{"kaiwo-managed-gpu-or-queued", queued + gpu}}, owned(k)...)}
		if len(k.PartOf) > 0 {
			v.comment = strings.TrimSpace(v.comment + " " + fmt.Sprintf("A %s that a %s controls is a part of that workload: its controller's CREATE is not sent; "+
				"a team user's CREATE, and every UPDATE, is, and is held to that workload's rules.", k.GVK.Kind, strings.Join(k.PartOf, " or ")))
			v.conditions = append(v.conditions, condition{"not-a-part-from-a-controller-or-update", "oldObject != null ||\n" + notFromAController(k.PartOf)})
		}
		out = append(out, v)
		if k.Scale {
			scaled = append(scaled, webhook{name: k.Resource + "-scale.validate.kaiwo.silogen.ai", path: validatePath,
				group: k.GVK.Group, version: k.GVK.Version, resource: k.Resource + "/scale", ops: []string{"UPDATE"},
				comment: fmt.Sprintf("The Scale object carries no labels or annotations of the %[1]s (the API server builds it "+
					"from name, namespace, UID and replicas only), so neither the condition above nor an objectSelector "+
					"could pick managed %[1]ss: every scale-up is sent, and the server reads the %[1]s. Scale-downs are not.", k.GVK.Kind),
				conditions: []condition{{"scale-up", scaleUp}}})
		}
	}
	out = append(out, scaled...)
	owners := notFromAController(r.Owners())
	for _, u := range r.Unhandled() {
		gpu, err := TemplatesGPU(u.Templates)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", u.GVK, err)
		}
		w := webhook{name: u.Resource + ".validate.kaiwo.silogen.ai", path: validatePath, group: u.GVK.Group,
			version: u.GVK.Version, resource: u.Resource, ops: []string{"CREATE", "UPDATE"}, comment: u.Note,
			conditions: []condition{{"gpu", gpu}, {"not-from-a-controller", owners}}}
		if u.Controlled {
			w.conditions[1] = condition{"not-from-a-controller-or-update", "oldObject != null ||\n" + owners}
		}
		out = append(out, w)
	}
	return out, nil
}

// owned is the condition that keeps away the objects of k that a controller of one of its owners creates
// (Kind.Owners): none when k has no owners.
func owned(k mutate.Kind) []condition {
	if owners := k.Owners(); len(owners) > 0 {
		return []condition{{"not-from-a-controller", notCreatedByAController(owners, k.SkipControllerUpdates)}}
	}
	return nil
}

// validatingNote says what a handled kind's validating rule leaves to others, if anything.
func validatingNote(k mutate.Kind) string {
	var notes []string
	if len(k.QueueLabels) > 0 {
		notes = append(notes, fmt.Sprintf("The objects a %s's controller creates take the labels at %s: the queue label there "+
			"is a rule too.", k.GVK.Kind, strings.Join(k.QueueLabels, ", ")))
	}
	if len(k.Owners()) > 0 {
		n := fmt.Sprintf("A %s that a controller creates for one of its owners (%s) was checked as that owner and is not "+
			"sent on CREATE; one a team user writes with such an owner reference is (the users are the server's: "+
			"systemRequest).", k.GVK.Kind, strings.Join(k.Owners(), ", "))
		if k.SkipControllerUpdates {
			n += fmt.Sprintf(" A controller's UPDATE of an owned %s is not sent either (the busy path); a team user's is, and "+
				"is held to the template rules the stored %s kept (a toleration added to a pending one).", k.GVK.Kind, k.GVK.Kind)
		}
		notes = append(notes, n)
	}
	return strings.Join(notes, "\n\n")
}
