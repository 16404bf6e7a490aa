package controller

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/silogen/kaiwo-webhook/api/v1alpha1"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

func pol(name string, prio int32, team string) v1alpha1.KaiwoPolicy {
	return v1alpha1.KaiwoPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 3},
		Spec: v1alpha1.KaiwoPolicySpec{Priority: prio,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": team}},
			Defaults:          &v1alpha1.PolicyDefaults{Queue: name + "-q"}},
	}
}

func status(t *testing.T, p v1alpha1.KaiwoPolicy, all []v1alpha1.KaiwoPolicy, ns map[string]map[string]string, fl policy.Flavors, missing func(string, string) bool) v1alpha1.KaiwoPolicyStatus {
	t.Helper()
	return DesiredStatus(&p, policy.MakeReport(p.Name, all, ns, fl), missing)
}

func cond(st v1alpha1.KaiwoPolicyStatus, typ string) metav1.Condition {
	if c := meta.FindStatusCondition(st.Conditions, typ); c != nil {
		return *c
	}
	return metav1.Condition{}
}

func TestDesiredStatus(t *testing.T) {
	ns := map[string]map[string]string{"a": {"team": "ml"}, "b": {"team": "ml"}, "c": {"team": "cv"}}
	none := func(string, string) bool { return false }

	t.Run("valid, resolved, two namespaces", func(t *testing.T) {
		p := pol("ml", 1, "ml")
		st := status(t, p, []v1alpha1.KaiwoPolicy{p}, ns, nil, none)
		if st.ObservedGeneration != 3 || st.Namespaces != 2 || len(st.Warnings) != 0 {
			t.Errorf("status %+v", st)
		}
		if c := cond(st, v1alpha1.ConditionValid); c.Status != metav1.ConditionTrue || c.ObservedGeneration != 3 {
			t.Errorf("Valid %+v", c)
		}
		if c := cond(st, v1alpha1.ConditionDegraded); c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonResolved {
			t.Errorf("Degraded %+v", c)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		p := pol("ml", 1, "ml")
		p.Spec.Limits = &v1alpha1.PolicyLimits{AllowedSecrets: []string{"team-[a"}}
		c := cond(status(t, p, []v1alpha1.KaiwoPolicy{p}, ns, nil, none), v1alpha1.ConditionValid)
		if c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonInvalid || !strings.Contains(c.Message, "spec.limits.allowedSecrets[0]") {
			t.Errorf("Valid %+v", c)
		}
	})
	t.Run("missing flavor is degraded, fail open", func(t *testing.T) {
		p := pol("ml", 1, "ml")
		p.Spec.Defaults.GPUsPerNodeFrom = &v1alpha1.GPUsPerNodeSource{ResourceFlavor: "mi300x", NodeLabel: "gpus"}
		st := status(t, p, []v1alpha1.KaiwoPolicy{p}, ns, policy.Flavors{}, none)
		if c := cond(st, v1alpha1.ConditionDegraded); c.Status != metav1.ConditionTrue || c.Reason != v1alpha1.ReasonFailOpen || !strings.Contains(c.Message, `ResourceFlavor "mi300x" not found`) {
			t.Errorf("Degraded %+v", c)
		}
		st = status(t, p, []v1alpha1.KaiwoPolicy{p}, ns, policy.Flavors{"mi300x": {"gpus": "4"}}, none)
		if c := cond(st, v1alpha1.ConditionDegraded); c.Status != metav1.ConditionFalse {
			t.Errorf("with the flavor: Degraded %+v", c)
		}
	})
	t.Run("tie names the other policy and the namespaces", func(t *testing.T) {
		p, q := pol("ml", 5, "ml"), pol("ml-too", 5, "ml")
		st := status(t, p, []v1alpha1.KaiwoPolicy{p, q}, ns, nil, none)
		c := cond(st, v1alpha1.ConditionDegraded)
		if c.Reason != v1alpha1.ReasonPriorityTie || !strings.Contains(c.Message, `KaiwoPolicy "ml-too" has the same priority 5 and also selects namespaces a, b`) {
			t.Errorf("Degraded %+v", c)
		}
	})
	t.Run("missing LocalQueue only where this policy decides the queue", func(t *testing.T) {
		p, high := pol("ml", 1, "ml"), pol("high", 9, "ml")
		missing := func(ns, q string) bool { return ns == "a" }
		w := strings.Join(status(t, p, []v1alpha1.KaiwoPolicy{p}, ns, nil, missing).Warnings, "\n")
		if !strings.Contains(w, `the default queue "ml-q" has no LocalQueue in namespace a:`) {
			t.Errorf("warnings %q", w)
		}
		if w := status(t, p, []v1alpha1.KaiwoPolicy{p, high}, ns, nil, missing).Warnings; len(w) != 0 {
			t.Errorf("a higher policy decides the queue, yet warnings %q", w)
		}
		if w := status(t, p, []v1alpha1.KaiwoPolicy{p}, ns, nil, nil).Warnings; len(w) != 0 {
			t.Errorf("cannot tell (no Kueue), yet warnings %q", w)
		}
	})
	t.Run("bounded: many ties and namespaces", func(t *testing.T) {
		many := map[string]map[string]string{}
		for i := range 1000 {
			many[fmt.Sprintf("ns-%04d", i)] = map[string]string{"team": "ml"}
		}
		all := []v1alpha1.KaiwoPolicy{pol("ml", 5, "ml")}
		for i := range 40 {
			all = append(all, pol(fmt.Sprintf("tie-%02d", i), 5, "ml"))
		}
		st := status(t, all[0], all, many, nil, func(string, string) bool { return true })
		if st.Namespaces != 1000 || len(st.Warnings) != 16 || !strings.HasPrefix(st.Warnings[15], "and 26 more") {
			t.Errorf("namespaces %d, %d warnings, last %q", st.Namespaces, len(st.Warnings), st.Warnings[len(st.Warnings)-1])
		}
		for _, w := range st.Warnings {
			if len(w) > 1024 || strings.Contains(w, "ns-0005") {
				t.Errorf("warning not bounded: %d bytes %q", len(w), w[:80])
			}
		}
		if c := cond(st, v1alpha1.ConditionDegraded); len(c.Message) > 4096 {
			t.Errorf("Degraded message of %d bytes", len(c.Message))
		}
	})
	t.Run("unchanged status keeps its transition time", func(t *testing.T) {
		p := pol("ml", 1, "ml")
		first := status(t, p, []v1alpha1.KaiwoPolicy{p}, ns, nil, none)
		for i := range first.Conditions {
			first.Conditions[i].LastTransitionTime = metav1.NewTime(time.Unix(1000, 0))
		}
		p.Status = first
		if again := status(t, p, []v1alpha1.KaiwoPolicy{p}, ns, nil, none); !equalStatus(again, first) {
			t.Errorf("a second computation differs: %+v vs %+v", again, first)
		}
	})
}

func equalStatus(a, b v1alpha1.KaiwoPolicyStatus) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}
