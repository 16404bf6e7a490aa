package policy

import (
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"github.com/silogen/kaiwo-webhook/api/v1alpha1"
)

// teamLabel is the namespace label the test policies select on.
const teamLabel = "kaiwo.silogen.ai/team"

// policyWrapper builds KaiwoPolicies for tests, as Kueue's testing wrappers do.
type policyWrapper struct{ v1alpha1.KaiwoPolicy }

// makePolicy returns a valid policy that selects the namespaces labelled team=name.
func makePolicy(name string) *policyWrapper {
	return &policyWrapper{v1alpha1.KaiwoPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "KaiwoPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1},
		Spec: v1alpha1.KaiwoPolicySpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{teamLabel: name}},
		},
	}}
}

func (w *policyWrapper) Obj() *v1alpha1.KaiwoPolicy { return &w.KaiwoPolicy }

func (w *policyWrapper) Generation(g int64) *policyWrapper { w.ObjectMeta.Generation = g; return w }
func (w *policyWrapper) Priority(p int32) *policyWrapper   { w.Spec.Priority = p; return w }
func (w *policyWrapper) Enforce() *policyWrapper {
	w.Spec.Mode = v1alpha1.ModeEnforce
	return w
}

func (w *policyWrapper) Selector(s *metav1.LabelSelector) *policyWrapper {
	w.Spec.NamespaceSelector = s
	return w
}

func (w *policyWrapper) defaults() *v1alpha1.PolicyDefaults {
	if w.Spec.Defaults == nil {
		w.Spec.Defaults = &v1alpha1.PolicyDefaults{}
	}
	return w.Spec.Defaults
}

func (w *policyWrapper) limits() *v1alpha1.PolicyLimits {
	if w.Spec.Limits == nil {
		w.Spec.Limits = &v1alpha1.PolicyLimits{}
	}
	return w.Spec.Limits
}

func (w *policyWrapper) Queue(q string) *policyWrapper { w.defaults().Queue = q; return w }
func (w *policyWrapper) Vendor(v string) *policyWrapper {
	w.defaults().GPUVendor = v1alpha1.GPUVendor(v)
	return w
}
func (w *policyWrapper) GPUsPerNode(n int32) *policyWrapper {
	w.defaults().GPUsPerNode = ptr.To(n)
	return w
}
func (w *policyWrapper) GPUsPerNodeFrom(flavor, label string) *policyWrapper {
	w.defaults().GPUsPerNodeFrom = &v1alpha1.GPUsPerNodeSource{ResourceFlavor: flavor, NodeLabel: label}
	return w
}
func (w *policyWrapper) CPUPerGPU(q string) *policyWrapper {
	w.defaults().CPUPerGPU = ptr.To(resource.MustParse(q))
	return w
}
func (w *policyWrapper) MemoryPerGPU(q string) *policyWrapper {
	w.defaults().MemoryPerGPU = ptr.To(resource.MustParse(q))
	return w
}
func (w *policyWrapper) ShmSize(q string) *policyWrapper {
	w.defaults().ShmSize = ptr.To(resource.MustParse(q))
	return w
}
func (w *policyWrapper) TTL(s int32) *policyWrapper {
	w.defaults().TTLSecondsAfterFinished = ptr.To(s)
	return w
}
func (w *policyWrapper) PriorityClass(c string) *policyWrapper {
	w.defaults().PriorityClass = c
	return w
}
func (w *policyWrapper) ImagePullSecret(s string) *policyWrapper {
	w.defaults().ImagePullSecret = s
	return w
}
func (w *policyWrapper) Tolerations(t ...corev1.Toleration) *policyWrapper {
	w.defaults().Tolerations = t
	return w
}
func (w *policyWrapper) NodeSelector(ns map[string]string) *policyWrapper {
	w.defaults().NodeSelector = ns
	return w
}
func (w *policyWrapper) Affinity(a *corev1.Affinity) *policyWrapper {
	w.defaults().Affinity = a
	return w
}
func (w *policyWrapper) MaxGPUs(n int32) *policyWrapper {
	w.limits().MaxGPUsPerWorkload = ptr.To(n)
	return w
}
func (w *policyWrapper) AllowedVendors(v ...v1alpha1.GPUVendor) *policyWrapper {
	w.limits().AllowedVendors = v
	return w
}
func (w *policyWrapper) AllowedQueues(q ...string) *policyWrapper {
	w.limits().AllowedQueues = q
	return w
}
func (w *policyWrapper) AllowedSecrets(s ...string) *policyWrapper {
	w.limits().AllowedSecrets = s
	return w
}
func (w *policyWrapper) Locked(f ...v1alpha1.LockedField) *policyWrapper {
	w.Spec.Locked = f
	return w
}
func (w *policyWrapper) Patch(json string) *policyWrapper {
	w.Spec.PodTemplatePatch = &runtime.RawExtension{Raw: []byte(json)}
	return w
}
func (w *policyWrapper) LocalQueue(create bool, clusterQueue string) *policyWrapper {
	w.Spec.LocalQueue = &v1alpha1.LocalQueuePolicy{Create: create, ClusterQueue: clusterQueue}
	return w
}

// compiled compiles policies that must be valid.
func compiled(ps ...*v1alpha1.KaiwoPolicy) []*Compiled {
	out := make([]*Compiled, len(ps))
	for i, p := range ps {
		out[i], _ = Compile(p, nil)
	}
	return out
}

// withDefaults returns Default() changed by f, for expected policies.
func withDefaults(f func(p *Policy)) *Policy {
	p := Default()
	f(p)
	return p
}

// policyCmp compares policies: quantities by value, errors by message.
var policyCmp = cmp.Options{
	cmp.Comparer(func(a, b resource.Quantity) bool { return a.Cmp(b) == 0 }),
	cmp.Comparer(func(a, b error) bool {
		if a == nil || b == nil {
			return a == nil && b == nil
		}
		return a.Error() == b.Error()
	}),
	cmpopts.EquateEmpty(),
}
