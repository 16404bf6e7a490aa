package manifests_test

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	"github.com/silogen/kaiwo-webhook/pkg/mutate"
)

// mutatingWant is the contract of each mutating webhook, apart from its match condition: one per kind of
// the registry serve is given, CREATE, and UPDATE for the kinds mutated on UPDATE.
func mutatingWant() []webhookWant {
	var out []webhookWant
	for _, k := range mutate.Builtin().Kinds() {
		ops := []admissionregistrationv1.OperationType{admissionregistrationv1.Create}
		if k.Update {
			ops = append(ops, admissionregistrationv1.Update)
		}
		w := webhookWant{k.Resource + ".kaiwo.silogen.ai", k.GVK.Group, k.GVK.Version, k.Resource, ops, withOwners(k, condition)}
		if len(k.PartOf) > 0 { // a part of another workload is left to it
			w.conditions = append(w.conditions, "not-part-of-a-workload")
		}
		out = append(out, w)
	}
	return out
}

// withOwners are the match conditions named, and for a kind with owners (a Pod, a Job) the one that keeps
// away the objects a controller creates from a checked template.
func withOwners(k mutate.Kind, names ...string) []string {
	if len(k.Owners()) > 0 {
		names = append(names, "not-from-a-controller")
	}
	return names
}

type webhookWant struct {
	name, group, version, resource string
	ops                            []admissionregistrationv1.OperationType
	conditions                     []string
}

func TestWebhookConfiguration(t *testing.T) {
	for name, objs := range renders(t) {
		t.Run(name, func(t *testing.T) {
			cert := find(t, objs, "Certificate", "")
			certRef := cert.GetNamespace() + "/" + cert.GetName()
			if certRef != namespace+"/kaiwo-webhook" {
				t.Errorf("Certificate %s, want %s/kaiwo-webhook", certRef, namespace)
			}
			if got, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName"); got != certSecret {
				t.Errorf("Certificate secretName %q, want %q", got, certSecret)
			}
			dnsNames, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
			if diff := cmp.Diff([]string{"kaiwo-webhook.kaiwo-system.svc", "kaiwo-webhook.kaiwo-system.svc.cluster.local"}, dnsNames); diff != "" {
				t.Errorf("Certificate dnsNames (-want,+got):\n%s", diff)
			}
			if _, found, _ := unstructured.NestedMap(find(t, objs, "Issuer", "").Object, "spec", "selfSigned"); !found {
				t.Error("Issuer is not selfSigned")
			}

			m := into[admissionregistrationv1.MutatingWebhookConfiguration](t, find(t, objs, "MutatingWebhookConfiguration", serviceName))
			if got := m.Annotations[injectCAFrom]; got != certRef {
				t.Errorf("MutatingWebhookConfiguration %s = %q, want %q", injectCAFrom, got, certRef)
			}
			mutatingWant := mutatingWant()
			if len(m.Webhooks) != len(mutatingWant) {
				t.Fatalf("%d mutating webhooks, want %d", len(m.Webhooks), len(mutatingWant))
			}
			for i, w := range mutatingWant {
				got := m.Webhooks[i]
				var names []string
				for _, c := range got.MatchConditions {
					names = append(names, c.Name)
				}
				if diff := cmp.Diff(w.conditions, names); diff != "" {
					t.Errorf("%s: match conditions (-want,+got):\n%s", w.name, diff)
				}
				got.MatchConditions = nil // compiled and evaluated in TestMatchConditions
				v := w.webhook(mutatePath)
				want := admissionregistrationv1.MutatingWebhook{Name: v.Name, ClientConfig: v.ClientConfig, Rules: v.Rules,
					FailurePolicy: v.FailurePolicy, MatchPolicy: v.MatchPolicy, NamespaceSelector: v.NamespaceSelector,
					SideEffects: v.SideEffects, TimeoutSeconds: v.TimeoutSeconds, AdmissionReviewVersions: v.AdmissionReviewVersions,
					ReinvocationPolicy: ptr.To(admissionregistrationv1.IfNeededReinvocationPolicy)}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("webhook %d (-want,+got):\n%s", i, diff)
				}
			}

			v := into[admissionregistrationv1.ValidatingWebhookConfiguration](t, find(t, objs, "ValidatingWebhookConfiguration", serviceName))
			if got := v.Annotations[injectCAFrom]; got != certRef {
				t.Errorf("ValidatingWebhookConfiguration %s = %q, want %q", injectCAFrom, got, certRef)
			}
			wantV := []admissionregistrationv1.ValidatingWebhook{{
				Name: "kaiwopolicies.kaiwo.silogen.ai",
				ClientConfig: admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
					Namespace: namespace, Name: serviceName, Path: ptr.To(validatePath)}},
				Rules: []admissionregistrationv1.RuleWithOperations{{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule: admissionregistrationv1.Rule{APIGroups: []string{"kaiwo.silogen.ai"}, APIVersions: []string{"v1alpha1"},
						Resources: []string{kaiwoPolicies}, Scope: ptr.To(admissionregistrationv1.ClusterScope)},
				}},
				FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
				MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
				SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
				TimeoutSeconds:          ptr.To[int32](5),
				AdmissionReviewVersions: []string{"v1"},
			}}
			if diff := cmp.Diff(wantV, v.Webhooks[:min(1, len(v.Webhooks))]); diff != "" {
				t.Errorf("validating webhooks (-want,+got):\n%s", diff)
			}
			checkWorkloadValidators(t, v.Webhooks) // the others: validating_test.go

			// The webhook Service reaches the container's webhook port.
			svc := into[corev1.Service](t, find(t, objs, "Service", serviceName))
			dep := into[appsv1.Deployment](t, find(t, objs, "Deployment", serviceName))
			if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(dep.Spec.Template.Labels)) {
				t.Errorf("Service selector %v does not select the pods %v", svc.Spec.Selector, dep.Spec.Template.Labels)
			}
			wantPorts := map[string][2]int32{"webhook": {443, 9443}, "metrics": {8443, 8443}}
			for name, p := range wantPorts {
				i := slices.IndexFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Name == name })
				if i < 0 || svc.Spec.Ports[i].Port != p[0] || containerPort(dep, svc.Spec.Ports[i].TargetPort) != p[1] {
					t.Errorf("Service port %s: want %d -> container port %d, got %+v", name, p[0], p[1], svc.Spec.Ports)
				}
			}
		})
	}
}
