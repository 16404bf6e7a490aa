package bench

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/silogen/kaiwo-webhook/api/v1alpha1"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// ScaleIndex is an Index of nPolicies policies, each selecting one team label, and nNamespaces
// namespaces spread over the teams: the shape of pkg/policy's BenchmarkIndexFor and TestIndexHeap,
// built here to measure it inside a server process (RSS), which a package test cannot.
func ScaleIndex(nPolicies, nNamespaces int) *policy.Index {
	x := policy.NewIndex()
	if nPolicies > 0 {
		pols := make([]v1alpha1.KaiwoPolicy, nPolicies)
		for i := range pols {
			team := fmt.Sprintf("team-%d", i)
			q := fmt.Sprintf("q-%d", i)
			pols[i] = v1alpha1.KaiwoPolicy{
				TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "KaiwoPolicy"},
				ObjectMeta: metav1.ObjectMeta{Name: team, Generation: 1},
				Spec: v1alpha1.KaiwoPolicySpec{
					Priority:          int32(i % 7),
					NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kaiwo.silogen.ai/team": team}},
					Defaults:          &v1alpha1.PolicyDefaults{Queue: q},
					Limits:            &v1alpha1.PolicyLimits{MaxGPUsPerWorkload: ptr.To[int32](64), AllowedQueues: []string{q, "shared"}},
					Locked:            []v1alpha1.LockedField{"queue"},
				},
			}
		}
		x.SetPolicies(pols)
	}
	for i := range nNamespaces {
		name := fmt.Sprintf("ns-%d", i)
		ls := map[string]string{"kubernetes.io/metadata.name": name}
		if nPolicies > 0 {
			ls["kaiwo.silogen.ai/team"] = fmt.Sprintf("team-%d", i%nPolicies)
		}
		x.SetNamespace(name, ls)
	}
	return x
}
