package policy

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/silogen/kaiwo-webhook/api/v1alpha1"
)

// ValidateSet checks p, being created or updated, against the existing
// policies (an existing one of the same name is the one p replaces): two
// policies of equal priority that select the same namespace conflict, since
// neither would win.
//
// Whether two label selectors overlap cannot be decided without the namespaces
// (In and NotIn, Exists and DoesNotExist combine freely), so a conflict is
// defined as: equal priority, and either identical selectors (as parsed, so
// the order of requirements does not matter) or a namespace in namespaces
// (name to labels: the cluster's namespaces today) that both select. A later
// namespace or label change can still create an overlap; resolution then breaks
// the tie by name and reports a warning, rather than failing the namespace.
//
// The denial names the other policy and how many namespaces both select, never
// a namespace: the requester may not be allowed to list namespaces, and label
// selectors would otherwise let them probe for namespace names by label.
func ValidateSet(p *v1alpha1.KaiwoPolicy, existing []v1alpha1.KaiwoPolicy, namespaces map[string]map[string]string) field.ErrorList {
	sel, ok := parseSelector(p.Spec.NamespaceSelector)
	if !ok {
		return nil // Validate reports the selector
	}
	var selected []string
	for name, ls := range namespaces {
		if sel.Matches(labels.Set(ls)) {
			selected = append(selected, name)
		}
	}

	var others []*v1alpha1.KaiwoPolicy
	for i := range existing {
		if o := &existing[i]; o.Name != p.Name && o.Spec.Priority == p.Spec.Priority {
			others = append(others, o)
		}
	}
	slices.SortFunc(others, func(a, b *v1alpha1.KaiwoPolicy) int { return strings.Compare(a.Name, b.Name) })

	var errs field.ErrorList
	pp := specPath.Child("priority")
	for _, o := range others {
		osel, ok := parseSelector(o.Spec.NamespaceSelector)
		if !ok {
			continue
		}
		if osel.String() == sel.String() {
			errs = append(errs, field.Invalid(pp, p.Spec.Priority, fmt.Sprintf(
				"must differ from the priority of KaiwoPolicy %q, which has the same namespaceSelector", o.Name)))
			continue
		}
		shared := 0
		for _, ns := range selected {
			if osel.Matches(labels.Set(namespaces[ns])) {
				shared++
			}
		}
		if shared > 0 {
			errs = append(errs, field.Invalid(pp, p.Spec.Priority, fmt.Sprintf(
				"must differ from the priority of KaiwoPolicy %q, which also selects %s that this one selects", o.Name, countNamespaces(shared))))
		}
	}
	return errs
}

func countNamespaces(n int) string {
	if n == 1 {
		return "1 namespace"
	}
	return fmt.Sprintf("%d namespaces", n)
}

func parseSelector(sel *metav1.LabelSelector) (labels.Selector, bool) {
	if sel == nil {
		return nil, false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	return s, err == nil
}
