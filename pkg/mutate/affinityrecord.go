package mutate

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
)

// The GPU model (kaiwo.silogen.ai/gpu-model) is a required node affinity expression on the vendor's
// product label. The record names the label key and a hash of the expression (exprKey); an UPDATE that changes or removes the model then
// changes or removes the expression instead of adding a second one that no node can match. The policy's
// own affinity is not recorded: it is a default, kept as the pod template has it.

// exprKey names an expression in the record: its label key and a hash of the rest, so that an
// expression the user wrote on the same label is told apart without copying its values.
func exprKey(e corev1.NodeSelectorRequirement) string {
	return fmt.Sprintf("%s#%08x", e.Key, fnv32(string(e.Operator)+"|"+strings.Join(e.Values, ",")))
}

// isProductLabel reports whether a record key is on a GPU product label that gpu-model writes.
func isProductLabel(id string) bool {
	key, _, _ := strings.Cut(id, "#")
	for _, l := range productLabels {
		if l == key {
			return true
		}
	}
	return false
}

func requiredTerms(ps *corev1.PodSpec) []corev1.NodeSelectorTerm {
	if ps.Affinity == nil || ps.Affinity.NodeAffinity == nil || ps.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return nil
	}
	return ps.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
}

// expressionsOn lists, per required term, the match expressions of record key id.
func expressionsOn(ps *corev1.PodSpec, id string) ([][]corev1.NodeSelectorRequirement, bool) {
	var out [][]corev1.NodeSelectorRequirement
	found := false
	for _, t := range requiredTerms(ps) {
		var es []corev1.NodeSelectorRequirement
		for _, e := range t.MatchExpressions {
			if exprKey(e) == id {
				es = append(es, e)
				found = true
			}
		}
		out = append(out, es)
	}
	return out, found
}

// stripNodeAffinity removes from nps the expressions of record key id that ops has in the same term,
// and the structure that is left empty; it reports whether it removed any.
func stripNodeAffinity(nps, ops *corev1.PodSpec, id string) bool {
	nt, ot := requiredTerms(nps), requiredTerms(ops)
	removed := false
	for i := range nt {
		if i >= len(ot) {
			break
		}
		nt[i].MatchExpressions = slices.DeleteFunc(nt[i].MatchExpressions, func(e corev1.NodeSelectorRequirement) bool {
			mine := exprKey(e) == id && slices.ContainsFunc(ot[i].MatchExpressions, func(o corev1.NodeSelectorRequirement) bool {
				return apiequality.Semantic.DeepEqual(o, e)
			})
			removed = removed || mine
			return mine
		})
	}
	if removed {
		pruneAffinity(nps)
	}
	return removed
}

// pruneAffinity drops required terms that are all empty, then empty parents, as requireNodeLabel made them.
func pruneAffinity(ps *corev1.PodSpec) {
	na := ps.Affinity.NodeAffinity
	if !slices.ContainsFunc(requiredTerms(ps), func(t corev1.NodeSelectorTerm) bool {
		return len(t.MatchExpressions) > 0 || len(t.MatchFields) > 0
	}) {
		na.RequiredDuringSchedulingIgnoredDuringExecution = nil
	}
	if na.RequiredDuringSchedulingIgnoredDuringExecution == nil && len(na.PreferredDuringSchedulingIgnoredDuringExecution) == 0 {
		ps.Affinity.NodeAffinity = nil
	}
	if a := ps.Affinity; a.NodeAffinity == nil && a.PodAffinity == nil && a.PodAntiAffinity == nil {
		ps.Affinity = nil
	}
}

// placedAffinity lists the record keys of the product label expressions out has that in lacks in the same term.
func placedAffinity(ips, ops *corev1.PodSpec, known func(string) bool) []string {
	var keys []string
	it := requiredTerms(ips)
	for i, t := range requiredTerms(ops) {
		for _, e := range t.MatchExpressions {
			id := exprKey(e)
			if !isProductLabel(id) {
				continue
			}
			had := i < len(it) && slices.ContainsFunc(it[i].MatchExpressions, func(o corev1.NodeSelectorRequirement) bool {
				return apiequality.Semantic.DeepEqual(o, e)
			})
			if !had || known(id) {
				add(&keys, id)
			}
		}
	}
	return keys
}

// reorderAffinity keeps the expressions of each required term in the order in had them.
func reorderAffinity(ops, ips *corev1.PodSpec) {
	it := requiredTerms(ips)
	for i, t := range requiredTerms(ops) {
		if i < len(it) {
			reorder(t.MatchExpressions, it[i].MatchExpressions, func(e corev1.NodeSelectorRequirement) string {
				return e.Key + "|" + string(e.Operator) + "|" + strings.Join(e.Values, ",")
			})
		}
	}
}
