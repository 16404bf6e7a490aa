package manifests_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

const (
	crdFile       = "kaiwo.silogen.ai_kaiwopolicies.yaml"
	certDir       = "/tmp/k8s-webhook-server/serving-certs"
	certSecret    = "kaiwo-webhook-tls"
	injectCAFrom  = "cert-manager.io/inject-ca-from"
	image         = "ghcr.io/silogen/kaiwo-webhook:v0.1.0"
	condition     = "kaiwo-managed-or-gpu"
	mutatePath    = "/mutate"
	validatePath  = "/validate-kaiwopolicy"
	serviceName   = "kaiwo-webhook"
	metricsReader = "kaiwo-webhook-metrics-reader"
	kaiwoPolicies = "kaiwopolicies"
)

// renders are the two ways to install: kustomize and the chart with default values.
func renders(t *testing.T) map[string][]*unstructured.Unstructured {
	return map[string][]*unstructured.Unstructured{
		"kustomize": renderKustomize(t, "webhook"),
		"chart":     renderChart(t, nil),
	}
}

// TestKustomizeBuildsFromDisk builds config/webhook from the working tree
// exactly as `kubectl apply -k config/webhook` does.
func TestKustomizeBuildsFromDisk(t *testing.T) {
	if _, err := os.Stat(filepath.Join(root(t), crdKustomization)); err != nil {
		t.Fatalf("%s is missing: config/webhook includes ../crd, so `kubectl apply -k config/webhook` "+
			"fails without it (it needs `resources: [%s]`)", crdKustomization, crdFile)
	}
	objs := kustomize(t, filesys.MakeFsOnDisk(), filepath.Join(root(t), "config", "webhook"))
	find(t, objs, "CustomResourceDefinition", "kaiwopolicies.kaiwo.silogen.ai")
}

func TestKustomizeRendersEverything(t *testing.T) {
	objs := renderKustomize(t, "webhook")
	want := []string{
		"Certificate", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "Deployment",
		"Issuer", "MutatingWebhookConfiguration", "Namespace", "NetworkPolicy", "PodDisruptionBudget", "Role",
		"RoleBinding", "Service", "ServiceAccount", "ValidatingWebhookConfiguration",
	}
	if diff := cmp.Diff(want, kinds(objs)); diff != "" {
		t.Errorf("kinds (-want,+got):\n%s", diff)
	}
	find(t, objs, "Namespace", namespace)
	clusterScoped := []string{"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
		"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}
	for _, o := range objs {
		if ns := o.GetNamespace(); slices.Contains(clusterScoped, o.GetKind()) != (ns == "") || (ns != "" && ns != namespace) {
			t.Errorf("%s %s: namespace %q", o.GetKind(), o.GetName(), ns)
		}
	}
}

// TestChartRendersSameKinds: the chart installs what kustomize does, except the
// Namespace (Helm's --create-namespace makes the release namespace).
func TestChartRendersSameKinds(t *testing.T) {
	want := slices.DeleteFunc(kinds(renderKustomize(t, "webhook")), func(k string) bool { return k == "Namespace" })
	if diff := cmp.Diff(want, kinds(renderChart(t, nil))); diff != "" {
		t.Errorf("chart kinds (-kustomize,+chart):\n%s", diff)
	}
}

// TestChartMatchesKustomize: for release kaiwo-webhook in kaiwo-system, the
// chart's objects equal kustomize's where it matters; the webhooks entirely.
func TestChartMatchesKustomize(t *testing.T) {
	k, c := renderKustomize(t, "webhook"), renderChart(t, nil)
	same := func(what string, want, got any) {
		t.Helper()
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-kustomize,+chart):\n%s", what, diff)
		}
	}
	mk := into[admissionregistrationv1.MutatingWebhookConfiguration](t, find(t, k, "MutatingWebhookConfiguration", serviceName))
	mc := into[admissionregistrationv1.MutatingWebhookConfiguration](t, find(t, c, "MutatingWebhookConfiguration", serviceName))
	same("mutating webhooks", mk.Webhooks, mc.Webhooks)
	same("mutating webhook CA injection", mk.Annotations[injectCAFrom], mc.Annotations[injectCAFrom])

	vk := into[admissionregistrationv1.ValidatingWebhookConfiguration](t, find(t, k, "ValidatingWebhookConfiguration", serviceName))
	vc := into[admissionregistrationv1.ValidatingWebhookConfiguration](t, find(t, c, "ValidatingWebhookConfiguration", serviceName))
	same("validating webhooks", vk.Webhooks, vc.Webhooks)
	same("validating webhook CA injection", vk.Annotations[injectCAFrom], vc.Annotations[injectCAFrom])

	for _, name := range []string{serviceName, metricsReader} {
		same("ClusterRole "+name+" rules", into[rbacv1.ClusterRole](t, find(t, k, "ClusterRole", name)).Rules,
			into[rbacv1.ClusterRole](t, find(t, c, "ClusterRole", name)).Rules)
	}
	same("Role rules", into[rbacv1.Role](t, find(t, k, "Role", "")).Rules, into[rbacv1.Role](t, find(t, c, "Role", "")).Rules)

	dk := into[appsv1.Deployment](t, find(t, k, "Deployment", serviceName))
	dc := into[appsv1.Deployment](t, find(t, c, "Deployment", serviceName))
	same("Deployment replicas", dk.Spec.Replicas, dc.Spec.Replicas)
	same("Deployment containers", dk.Spec.Template.Spec.Containers, dc.Spec.Template.Spec.Containers)
	same("Deployment pod securityContext", dk.Spec.Template.Spec.SecurityContext, dc.Spec.Template.Spec.SecurityContext)
	same("Deployment volumes", dk.Spec.Template.Spec.Volumes, dc.Spec.Template.Spec.Volumes)
	same("Deployment serviceAccountName", dk.Spec.Template.Spec.ServiceAccountName, dc.Spec.Template.Spec.ServiceAccountName)
	same("Deployment priorityClassName", dk.Spec.Template.Spec.PriorityClassName, dc.Spec.Template.Spec.PriorityClassName)
	same("Deployment terminationGracePeriodSeconds", dk.Spec.Template.Spec.TerminationGracePeriodSeconds, dc.Spec.Template.Spec.TerminationGracePeriodSeconds)
	// Selectors differ by the chart's instance label; that each selects its own pods is checked elsewhere.
	noSelector := func(tsc []corev1.TopologySpreadConstraint) []corev1.TopologySpreadConstraint {
		for i := range tsc {
			tsc[i].LabelSelector = nil
		}
		return tsc
	}
	same("Deployment topologySpreadConstraints", noSelector(dk.Spec.Template.Spec.TopologySpreadConstraints), noSelector(dc.Spec.Template.Spec.TopologySpreadConstraints))
	same("Deployment affinity", dk.Spec.Template.Spec.Affinity, dc.Spec.Template.Spec.Affinity)
	nk := into[networkingv1.NetworkPolicy](t, find(t, k, "NetworkPolicy", serviceName)).Spec
	nc := into[networkingv1.NetworkPolicy](t, find(t, c, "NetworkPolicy", serviceName)).Spec
	nk.PodSelector, nc.PodSelector = metav1.LabelSelector{}, metav1.LabelSelector{}
	same("NetworkPolicy spec", nk, nc)

	same("Service ports", into[corev1.Service](t, find(t, k, "Service", serviceName)).Spec.Ports,
		into[corev1.Service](t, find(t, c, "Service", serviceName)).Spec.Ports)
	same("PodDisruptionBudget minAvailable", into[policyv1.PodDisruptionBudget](t, find(t, k, "PodDisruptionBudget", "")).Spec.MinAvailable,
		into[policyv1.PodDisruptionBudget](t, find(t, c, "PodDisruptionBudget", "")).Spec.MinAvailable)
	for _, kind := range []string{"Certificate", "Issuer"} {
		same(kind+" spec", find(t, k, kind, "").Object["spec"], find(t, c, kind, "").Object["spec"])
		same(kind+" name", find(t, k, kind, "").GetName(), find(t, c, kind, "").GetName())
	}
	same("CRD spec", find(t, k, "CustomResourceDefinition", "").Object["spec"], find(t, c, "CustomResourceDefinition", "").Object["spec"])
}

func containerPort(d *appsv1.Deployment, target intstr.IntOrString) int32 {
	if target.Type == intstr.Int {
		return target.IntVal
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == target.StrVal {
				return p.ContainerPort
			}
		}
	}
	return 0
}

// TestRBAC: exactly what the server needs and nothing else; no Secrets.
func TestRBAC(t *testing.T) {
	clusterWant := map[string][]string{
		"/namespaces":                               {"get", "list", "watch"},
		"authentication.k8s.io/tokenreviews":        {"create"},
		"authorization.k8s.io/subjectaccessreviews": {"create"},
		"kaiwo.silogen.ai/kaiwopolicies":            {"get", "list", "watch"},
		"kaiwo.silogen.ai/kaiwopolicies/status":     {"get", "patch", "update"},
		"events.k8s.io/events":                      {"create", "patch"},
		"kueue.x-k8s.io/resourceflavors":            {"get", "list", "watch"},
		"kueue.x-k8s.io/localqueues":                {"create", "get", "list", "watch"},
	}
	clusterWant["apps/deployments"] = []string{"get"}                          // the Deployment behind a scale-up
	clusterWant["apps/statefulsets"] = []string{"get"}                         // the StatefulSet behind a scale-up
	clusterWant["leaderworkerset.x-k8s.io/leaderworkersets"] = []string{"get"} // the LeaderWorkerSet behind a scale-up
	clusterWant["kubeflow.org/pytorchjobs"] = []string{"get"}                  // the PyTorchJob behind a scale-up
	roleWant := map[string][]string{
		"coordination.k8s.io/leases": {"create", "get", "update"},
		"/events":                    {"create", "patch"},
		"events.k8s.io/events":       {"create", "patch"},
	}
	for name, objs := range renders(t) {
		t.Run(name, func(t *testing.T) {
			cr := into[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole", serviceName))
			if diff := cmp.Diff(clusterWant, flatten(t, cr.Rules)); diff != "" {
				t.Errorf("ClusterRole (-want,+got):\n%s", diff)
			}
			role := into[rbacv1.Role](t, find(t, objs, "Role", ""))
			if role.Namespace != namespace {
				t.Errorf("Role in namespace %q, want %q", role.Namespace, namespace)
			}
			if diff := cmp.Diff(roleWant, flatten(t, role.Rules)); diff != "" {
				t.Errorf("Role (-want,+got):\n%s", diff)
			}
			sa := find(t, objs, "ServiceAccount", "")
			dep := into[appsv1.Deployment](t, find(t, objs, "Deployment", serviceName))
			if dep.Spec.Template.Spec.ServiceAccountName != sa.GetName() {
				t.Errorf("Deployment runs as %q, want the ServiceAccount %q", dep.Spec.Template.Spec.ServiceAccountName, sa.GetName())
			}
			subject := rbacv1.Subject{Kind: "ServiceAccount", Name: sa.GetName(), Namespace: sa.GetNamespace()}
			crb := into[rbacv1.ClusterRoleBinding](t, find(t, objs, "ClusterRoleBinding", ""))
			reader := into[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole", metricsReader))
			wantReader := []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}
			if diff := cmp.Diff(wantReader, reader.Rules); diff != "" {
				t.Errorf("ClusterRole %s (-want,+got):\n%s", metricsReader, diff)
			}
			if crb.RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cr.Name}) || !slices.Equal(crb.Subjects, []rbacv1.Subject{subject}) {
				t.Errorf("ClusterRoleBinding %+v does not bind %s to %+v", crb.RoleRef, cr.Name, subject)
			}
			rb := into[rbacv1.RoleBinding](t, find(t, objs, "RoleBinding", ""))
			if rb.Namespace != namespace || rb.RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name}) || !slices.Equal(rb.Subjects, []rbacv1.Subject{subject}) {
				t.Errorf("RoleBinding %+v does not bind %s to %+v", rb.RoleRef, role.Name, subject)
			}
		})
	}
}

// flatten maps group/resource to its sorted verbs, failing on wildcards,
// resourceNames, non-resource URLs and anything about Secrets.
func flatten(t *testing.T, rules []rbacv1.PolicyRule) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, r := range rules {
		if len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
			t.Errorf("rule %+v: resourceNames/nonResourceURLs not expected", r)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				if g == "*" || res == "*" || slices.Contains(r.Verbs, "*") {
					t.Errorf("rule %+v: wildcard", r)
				}
				if strings.HasPrefix(res, "secrets") {
					t.Errorf("rule %+v: grants access to Secrets", r)
				}
				k := g + "/" + res
				for _, v := range r.Verbs {
					if !slices.Contains(out[k], v) {
						out[k] = append(out[k], v)
					}
				}
				slices.Sort(out[k])
			}
		}
	}
	return out
}

func TestDeployment(t *testing.T) {
	for name, objs := range renders(t) {
		t.Run(name, func(t *testing.T) {
			d := into[appsv1.Deployment](t, find(t, objs, "Deployment", serviceName))
			if got := ptr.Deref(d.Spec.Replicas, 1); got != 2 {
				t.Errorf("replicas %d, want 2", got)
			}
			if !labels.SelectorFromSet(d.Spec.Selector.MatchLabels).Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("selector %v does not select the template %v", d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
			}
			pod := d.Spec.Template.Spec
			wantPodSC := &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				RunAsUser:      ptr.To[int64](65532),
				RunAsGroup:     ptr.To[int64](65532),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			}
			if diff := cmp.Diff(wantPodSC, pod.SecurityContext); diff != "" {
				t.Errorf("pod securityContext (-want,+got):\n%s", diff)
			}
			if len(pod.Containers) != 1 || len(pod.InitContainers) != 0 {
				t.Fatalf("want one container, got %d (+%d init)", len(pod.Containers), len(pod.InitContainers))
			}
			c := pod.Containers[0]
			wantSC := &corev1.SecurityContext{
				RunAsNonRoot:             ptr.To(true),
				ReadOnlyRootFilesystem:   ptr.To(true),
				AllowPrivilegeEscalation: ptr.To(false),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			}
			if diff := cmp.Diff(wantSC, c.SecurityContext); diff != "" {
				t.Errorf("container securityContext (-want,+got):\n%s", diff)
			}
			if c.Image != image {
				t.Errorf("image %q, want %q", c.Image, image)
			}
			if diff := cmp.Diff([]string{"serve", "--leader-elect"}, c.Args); diff != "" {
				t.Errorf("args (-want,+got):\n%s", diff)
			}
			if len(c.Command) != 0 {
				t.Errorf("command %q: the image's entrypoint is the binary", c.Command)
			}
			wantEnv := []corev1.EnvVar{{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{
				FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
				{Name: "MEMORY_LIMIT", ValueFrom: &corev1.EnvVarSource{
					ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "webhook", Resource: "limits.memory"}}}}
			if diff := cmp.Diff(wantEnv, c.Env); diff != "" {
				t.Errorf("env (-want,+got):\n%s", diff)
			}
			for _, p := range []struct {
				name string
				port int32
			}{{"webhook", 9443}, {"metrics", 8443}, {"health", 8081}} {
				if !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == p.name && cp.ContainerPort == p.port }) {
					t.Errorf("no container port %s %d in %+v", p.name, p.port, c.Ports)
				}
			}
			for probe, path := range map[*corev1.Probe]string{c.LivenessProbe: "/healthz", c.ReadinessProbe: "/readyz"} {
				if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != path || probe.HTTPGet.Port != intstr.FromInt32(8081) {
					t.Errorf("probe %s: want GET %s on 8081, got %+v", path, path, probe)
				}
			}
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, lim := c.Resources.Requests[r], c.Resources.Limits[r]
				if req.IsZero() || lim.IsZero() || req.Cmp(lim) > 0 {
					t.Errorf("%s: want request <= limit, both set; got %s / %s", r, req.String(), lim.String())
				}
			}
			wantMounts := []corev1.VolumeMount{{Name: "cert", MountPath: certDir, ReadOnly: true}}
			if diff := cmp.Diff(wantMounts, c.VolumeMounts); diff != "" {
				t.Errorf("volumeMounts (-want,+got):\n%s", diff)
			}
			wantVolumes := []corev1.Volume{{Name: "cert", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: certSecret}}}}
			if diff := cmp.Diff(wantVolumes, pod.Volumes); diff != "" {
				t.Errorf("volumes (-want,+got):\n%s", diff)
			}
			checkSpread(t, d)
			pdb := into[policyv1.PodDisruptionBudget](t, find(t, objs, "PodDisruptionBudget", ""))
			if pdb.Spec.MinAvailable == nil || *pdb.Spec.MinAvailable != intstr.FromInt32(1) ||
				!labels.SelectorFromSet(pdb.Spec.Selector.MatchLabels).Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("PodDisruptionBudget: want minAvailable 1 over the webhook pods, got %+v", pdb.Spec)
			}
		})
	}
}
