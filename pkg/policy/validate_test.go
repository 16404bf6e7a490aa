package policy

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/silogen/kaiwo-webhook/api/v1alpha1"
)

func TestValidateValid(t *testing.T) {
	cases := map[string]*v1alpha1.KaiwoPolicy{
		"minimal":                makePolicy("ml").Obj(),
		"select every namespace": makePolicy("all").Selector(&metav1.LabelSelector{}).Obj(),
		"everything set": makePolicy("ml").Priority(10).Enforce().Queue("team-ml").Vendor("amd").GPUsPerNode(8).
			CPUPerGPU("4").MemoryPerGPU("32Gi").ShmSize("64Gi").TTL(0).PriorityClass("normal").ImagePullSecret("regcred").
			Tolerations(
				corev1.Toleration{Key: "amd.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
				corev1.Toleration{Operator: corev1.TolerationOpExists},
				corev1.Toleration{Key: "gpu-count", Operator: corev1.TolerationOpGt, Value: "4"},
				corev1.Toleration{Key: "k", Value: "v", Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](30)},
			).
			NodeSelector(map[string]string{"node-pool": "gpu"}).
			Affinity(&corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
					MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "amd.com/gpu.product-name", Operator: corev1.NodeSelectorOpIn, Values: []string{"MI300X"}}},
				}}},
			}}).
			MaxGPUs(32).AllowedVendors("amd").AllowedQueues("team-ml", "team-ml-low").AllowedSecrets("hf-token", "team-ml-*", "[a-c]?x").
			Locked("queue", "tolerations", "nodeSelector", "ttlSecondsAfterFinished").
			Patch(`{"metadata":{"annotations":{"team":"ml"}},"spec":{"containers":[{"name":"main","env":[{"name":"A","value":"1"}]}]}}`).
			LocalQueue(true, "kaiwo").Obj(),
		"gpusPerNodeFrom": makePolicy("ml").GPUsPerNodeFrom("mi300x", "beta.amd.com/gpu.family.AI").Obj(),
		"null patch":      makePolicy("ml").Patch(`null`).Obj(),
	}
	for name, p := range cases {
		t.Run(name, func(t *testing.T) {
			if errs := Validate(p); len(errs) > 0 {
				t.Errorf("Validate() = %v, want no errors", errs)
			}
		})
	}
}

// TestValidateInvalid checks that each bad value is reported at its field, and
// that the message shows the bad value and says what is allowed.
func TestValidateInvalid(t *testing.T) {
	cases := map[string]struct {
		policy *v1alpha1.KaiwoPolicy
		// field is the path of the expected error; value must appear in its
		// message (empty for Required and Forbidden); must also.
		field, value, must string
	}{
		"bad name": {
			policy: makePolicy("Team_ML").Obj(), field: "metadata.name", value: "Team_ML", must: "RFC 1123",
		},
		"missing namespaceSelector": {
			policy: makePolicy("ml").Selector(nil).Obj(), field: "spec.namespaceSelector", must: "{} selects every namespace",
		},
		"bad namespaceSelector label key": {
			policy: makePolicy("ml").Selector(&metav1.LabelSelector{MatchLabels: map[string]string{"bad key!": "x"}}).Obj(),
			field:  "spec.namespaceSelector.matchLabels", value: "bad key!", must: "name part must consist of",
		},
		"bad namespaceSelector operator": {
			policy: makePolicy("ml").Selector(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: "Near", Values: []string{"x"}}}}).Obj(),
			field:  "spec.namespaceSelector.matchExpressions[0].operator", value: "Near", must: `"In", "NotIn", "Exists", "DoesNotExist"`,
		},
		"bad mode": {
			policy: func() *v1alpha1.KaiwoPolicy { p := makePolicy("ml").Obj(); p.Spec.Mode = "Always"; return p }(),
			field:  "spec.mode", value: "Always", must: `"OptIn", "Enforce"`,
		},
		"bad queue": {
			policy: makePolicy("ml").Queue("Team_ML").Obj(), field: "spec.defaults.queue", value: "Team_ML", must: "must be a LocalQueue name",
		},
		"queue longer than a label value": {
			policy: makePolicy("ml").Queue(strings.Repeat("q", 64)).Obj(), field: "spec.defaults.queue", value: strings.Repeat("q", 64), must: "at most 63 characters",
		},
		"bad vendor": {
			policy: makePolicy("ml").Vendor("intel").Obj(), field: "spec.defaults.gpuVendor", value: "intel", must: `"amd", "nvidia"`,
		},
		"zero gpusPerNode": {
			policy: makePolicy("ml").GPUsPerNode(0).Obj(), field: "spec.defaults.gpusPerNode", value: "0", must: "must be greater than 0",
		},
		"gpusPerNode and gpusPerNodeFrom": {
			policy: makePolicy("ml").GPUsPerNode(8).GPUsPerNodeFrom("mi300x", "gpus").Obj(),
			field:  "spec.defaults.gpusPerNodeFrom", must: "must not be set together with gpusPerNode",
		},
		"bad gpusPerNodeFrom node label": {
			policy: makePolicy("ml").GPUsPerNodeFrom("mi300x", "bad label!").Obj(),
			field:  "spec.defaults.gpusPerNodeFrom.nodeLabel", value: "bad label!", must: "name part must consist of",
		},
		"bad gpusPerNodeFrom flavor": {
			policy: makePolicy("ml").GPUsPerNodeFrom("MI300X", "gpus").Obj(),
			field:  "spec.defaults.gpusPerNodeFrom.resourceFlavor", value: "MI300X", must: "RFC 1123",
		},
		"negative cpuPerGpu": {
			policy: makePolicy("ml").CPUPerGPU("-1").Obj(), field: "spec.defaults.cpuPerGpu", value: "-1", must: "must be greater than 0",
		},
		"zero memoryPerGpu": {
			policy: makePolicy("ml").MemoryPerGPU("0").Obj(), field: "spec.defaults.memoryPerGpu", value: "0", must: "must be greater than 0",
		},
		"fractional memoryPerGpu": {
			policy: makePolicy("ml").MemoryPerGPU("0.5").Obj(), field: "spec.defaults.memoryPerGpu", value: "500m", must: "whole number of bytes",
		},
		"zero shmSize": {
			policy: makePolicy("ml").ShmSize("0Gi").Obj(), field: "spec.defaults.shmSize", value: "0", must: "must be greater than 0",
		},
		"negative ttl": {
			policy: makePolicy("ml").TTL(-1).Obj(), field: "spec.defaults.ttlSecondsAfterFinished", value: "-1", must: "greater than or equal to 0",
		},
		"bad priorityClass": {
			policy: makePolicy("ml").PriorityClass("Normal!").Obj(), field: "spec.defaults.priorityClass", value: "Normal!", must: "WorkloadPriorityClass name",
		},
		"bad imagePullSecret": {
			policy: makePolicy("ml").ImagePullSecret("Reg_Cred").Obj(), field: "spec.defaults.imagePullSecret", value: "Reg_Cred", must: "RFC 1123",
		},
		"bad toleration operator": {
			policy: makePolicy("ml").Tolerations(corev1.Toleration{Key: "k", Operator: "Maybe"}).Obj(),
			field:  "spec.defaults.tolerations[0].operator", value: "Maybe", must: `"Equal", "Exists", "Lt", "Gt"`,
		},
		"bad toleration key": {
			policy: makePolicy("ml").Tolerations(corev1.Toleration{Key: "bad key", Operator: corev1.TolerationOpExists}).Obj(),
			field:  "spec.defaults.tolerations[0].key", value: "bad key", must: "name part must consist of",
		},
		"toleration without key must be Exists": {
			policy: makePolicy("ml").Tolerations(corev1.Toleration{Operator: corev1.TolerationOpEqual, Value: "x"}).Obj(),
			field:  "spec.defaults.tolerations[0].operator", value: "Equal", must: "must be Exists when key is empty",
		},
		"toleration Exists with a value": {
			policy: makePolicy("ml").Tolerations(corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists, Value: "v1"}).Obj(),
			field:  "spec.defaults.tolerations[0].value", value: "v1", must: "must be empty when operator is Exists",
		},
		"toleration Gt with a non-integer": {
			policy: makePolicy("ml").Tolerations(corev1.Toleration{Key: "k", Operator: corev1.TolerationOpGt, Value: "many"}).Obj(),
			field:  "spec.defaults.tolerations[0].value", value: "many", must: "must be an integer",
		},
		"bad toleration effect": {
			policy: makePolicy("ml").Tolerations(corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists, Effect: "NoRun"}).Obj(),
			field:  "spec.defaults.tolerations[0].effect", value: "NoRun", must: `"NoSchedule", "PreferNoSchedule", "NoExecute"`,
		},
		"tolerationSeconds without NoExecute": {
			policy: makePolicy("ml").Tolerations(corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule, TolerationSeconds: ptr.To[int64](5)}).Obj(),
			field:  "spec.defaults.tolerations[0].effect", value: "NoSchedule", must: "must be NoExecute when tolerationSeconds is set",
		},
		"bad nodeSelector key": {
			policy: makePolicy("ml").NodeSelector(map[string]string{"bad key": "v"}).Obj(),
			field:  "spec.defaults.nodeSelector", value: "bad key", must: "name part must consist of",
		},
		"bad nodeSelector value": {
			policy: makePolicy("ml").NodeSelector(map[string]string{"pool": "bad value!"}).Obj(),
			field:  "spec.defaults.nodeSelector", value: "bad value!", must: "a valid label must be",
		},
		"bad node affinity operator": {
			policy: makePolicy("ml").Affinity(&corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
					MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "k", Operator: "Near", Values: []string{"x"}}},
				}}},
			}}).Obj(),
			field: "spec.defaults.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator",
			value: "Near", must: `"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"`,
		},
		"bad preferred node affinity weight": {
			policy: makePolicy("ml").Affinity(&corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{Weight: 101}},
			}}).Obj(),
			field: "spec.defaults.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight",
			value: "101", must: "must be in the range 1-100",
		},
		"pod anti-affinity without topologyKey": {
			policy: makePolicy("ml").Affinity(&corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{}},
			}}).Obj(),
			field: "spec.defaults.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey",
			must:  "must name a node label",
		},
		"zero maxGpusPerWorkload": {
			policy: makePolicy("ml").MaxGPUs(0).Obj(), field: "spec.limits.maxGpusPerWorkload", value: "0", must: "must be greater than 0",
		},
		"bad allowed vendor": {
			policy: makePolicy("ml").AllowedVendors("amd", "intel").Obj(), field: "spec.limits.allowedVendors[1]", value: "intel", must: `"amd", "nvidia"`,
		},
		"empty allowedVendors": {
			policy: makePolicy("ml").AllowedVendors([]v1alpha1.GPUVendor{}...).Obj(), field: "spec.limits.allowedVendors", must: "at least one vendor (amd, nvidia)",
		},
		"duplicate allowed vendor": {
			policy: makePolicy("ml").AllowedVendors("amd", "amd").Obj(), field: "spec.limits.allowedVendors[1]", value: "amd", must: "Duplicate value",
		},
		"bad allowed queue": {
			policy: makePolicy("ml").AllowedQueues("Bad_Q").Obj(), field: "spec.limits.allowedQueues[0]", value: "Bad_Q", must: "must be a LocalQueue name",
		},
		"bad secret pattern": {
			policy: makePolicy("ml").AllowedSecrets("hf-token", "team-[a").Obj(), field: "spec.limits.allowedSecrets[1]", value: "team-[a", must: "path.Match syntax",
		},
		"bad secret pattern escape": {
			policy: makePolicy("ml").AllowedSecrets(`team-\`).Obj(), field: "spec.limits.allowedSecrets[0]", value: `team-\\`, must: "path.Match syntax",
		},
		"duplicate secret pattern": {
			policy: makePolicy("ml").AllowedSecrets("hf-*", "hf-*").Obj(), field: "spec.limits.allowedSecrets[1]", value: "hf-*", must: "Duplicate value",
		},
		"default vendor outside its own limits": {
			policy: makePolicy("ml").Vendor("nvidia").AllowedVendors("amd").Obj(),
			field:  "spec.defaults.gpuVendor", value: "nvidia", must: `must be one of spec.limits.allowedVendors: "amd"`,
		},
		"default queue outside its own limits": {
			policy: makePolicy("ml").Queue("other").AllowedQueues("team-ml", "team-ml-low").Obj(),
			field:  "spec.defaults.queue", value: "other", must: `must be one of spec.limits.allowedQueues: "team-ml", "team-ml-low"`,
		},
		"unknown locked field": {
			policy: makePolicy("ml").Queue("q").Locked("queue", "gpus").Obj(), field: "spec.locked[1]", value: "gpus", must: `"affinity", "gpuVendor"`,
		},
		"locked field without a default": {
			policy: makePolicy("ml").Locked("priorityClass").Obj(), field: "spec.locked[0]", value: "priorityClass", must: "spec.defaults.priorityClass is not set",
		},
		"duplicate locked field": {
			policy: makePolicy("ml").Queue("q").Locked("queue", "queue").Obj(), field: "spec.locked[1]", value: "queue", must: "Duplicate value",
		},
		"patch with an unknown field": {
			policy: makePolicy("ml").Patch(`{"spec":{"tolerationz":[]}}`).Obj(), field: "spec.podTemplatePatch", value: "tolerationz", must: `unknown field "spec.tolerationz"`,
		},
		"patch with a wrong type": {
			policy: makePolicy("ml").Patch(`{"spec":{"containers":"main"}}`).Obj(), field: "spec.podTemplatePatch", value: `\"containers\":\"main\"`, must: "cannot unmarshal string into Go struct field PodSpec.spec.containers",
		},
		"patch that is not an object": {
			policy: makePolicy("ml").Patch(`[{"op":"add"}]`).Obj(), field: "spec.podTemplatePatch", value: `[{\"op\":\"add\"}]`, must: "not an object",
		},
		"bad localQueue clusterQueue": {
			policy: makePolicy("ml").LocalQueue(true, "Bad_CQ").Obj(), field: "spec.localQueue.clusterQueue", value: "Bad_CQ", must: "RFC 1123",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			errs := Validate(tc.policy)
			i := slices.IndexFunc(errs, func(e *field.Error) bool { return e.Field == tc.field })
			if i < 0 {
				t.Fatalf("Validate() = %v, want an error at %s", errs, tc.field)
			}
			msg := errs[i].Error()
			if !strings.Contains(msg, tc.value) || !strings.Contains(msg, tc.must) {
				t.Errorf("error at %s = %q, want it to show %q and say %q", tc.field, msg, tc.value, tc.must)
			}
			if len(errs) != 1 {
				t.Errorf("Validate() = %v, want only the error at %s", errs, tc.field)
			}
		})
	}
}

func TestValidateSet(t *testing.T) {
	namespaces := map[string]map[string]string{
		"ml-a":     {teamLabel: "ml", "env": "prod"},
		"vision-a": {teamLabel: "vision", "env": "prod"},
	}
	env := func(v string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{"env": v}}
	}
	cases := map[string]struct {
		policy   *v1alpha1.KaiwoPolicy
		existing []*v1alpha1.KaiwoPolicy
		want     field.ErrorList
	}{
		"different priorities never conflict": {
			policy:   makePolicy("prod").Selector(env("prod")).Priority(1).Obj(),
			existing: []*v1alpha1.KaiwoPolicy{makePolicy("ml").Obj()},
		},
		"equal priority, disjoint namespaces": {
			policy:   makePolicy("vision").Obj(),
			existing: []*v1alpha1.KaiwoPolicy{makePolicy("ml").Obj()},
		},
		"equal priority, a shared namespace": {
			policy:   makePolicy("prod").Selector(env("prod")).Obj(),
			existing: []*v1alpha1.KaiwoPolicy{makePolicy("vision").Obj(), makePolicy("ml").Obj()},
			want: field.ErrorList{
				field.Invalid(field.NewPath("spec", "priority"), int32(0), `must differ from the priority of KaiwoPolicy "ml", which also selects 1 namespace that this one selects`),
				field.Invalid(field.NewPath("spec", "priority"), int32(0), `must differ from the priority of KaiwoPolicy "vision", which also selects 1 namespace that this one selects`),
			},
		},
		"equal priority, every namespace shared: counted, not named": {
			policy: makePolicy("prod").Selector(env("prod")).Obj(),
			existing: []*v1alpha1.KaiwoPolicy{makePolicy("all-teams").Selector(&metav1.LabelSelector{
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: teamLabel, Operator: metav1.LabelSelectorOpExists}},
			}).Obj()},
			want: field.ErrorList{
				field.Invalid(field.NewPath("spec", "priority"), int32(0), `must differ from the priority of KaiwoPolicy "all-teams", which also selects 2 namespaces that this one selects`),
			},
		},
		"equal priority, identical selectors that select no namespace yet": {
			policy:   makePolicy("staging-2").Selector(env("staging")).Obj(),
			existing: []*v1alpha1.KaiwoPolicy{makePolicy("staging").Selector(env("staging")).Obj()},
			want: field.ErrorList{
				field.Invalid(field.NewPath("spec", "priority"), int32(0), `must differ from the priority of KaiwoPolicy "staging", which has the same namespaceSelector`),
			},
		},
		"an update of itself is no conflict": {
			policy:   makePolicy("ml").Queue("new").Obj(),
			existing: []*v1alpha1.KaiwoPolicy{makePolicy("ml").Obj()},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			existing := make([]v1alpha1.KaiwoPolicy, len(tc.existing))
			for i, p := range tc.existing {
				existing[i] = *p
			}
			got := ValidateSet(tc.policy, existing, namespaces)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ValidateSet() mismatch (-want,+got):\n%s", diff)
			}
			// A selector must not probe for namespace names through the denial.
			for ns := range namespaces {
				if len(got) > 0 && strings.Contains(got.ToAggregate().Error(), ns) {
					t.Errorf("denial names namespace %q: %v", ns, got)
				}
			}
		})
	}
}

// TestLockedEnumMatchesLockableFields keeps the CRD's enum of spec.locked (from
// the kubebuilder marker on v1alpha1.LockedField) in step with LockableFields.
func TestLockedEnumMatchesLockableFields(t *testing.T) {
	data, err := os.ReadFile("../../config/crd/kaiwo.silogen.ai_kaiwopolicies.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema struct {
						Properties struct {
							Spec struct {
								Properties struct {
									Locked struct {
										Items struct {
											Enum []string `json:"enum"`
										} `json:"items"`
									} `json:"locked"`
								} `json:"properties"`
							} `json:"spec"`
						} `json:"properties"`
					} `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatal(err)
	}
	if len(crd.Spec.Versions) != 1 {
		t.Fatalf("CRD has %d versions, want 1", len(crd.Spec.Versions))
	}
	got := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties.Spec.Properties.Locked.Items.Enum
	want := slices.Sorted(slices.Values(LockableFields))
	if diff := cmp.Diff(want, slices.Sorted(slices.Values(got))); diff != "" {
		t.Errorf("spec.locked enum in the CRD differs from LockableFields (-want,+got):\n%s", diff)
	}
}
