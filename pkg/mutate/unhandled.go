package mutate

import (
	"fmt"
	"strings"

	"github.com/tidwall/gjson"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// ValidateUnhandled checks an object of a kind Kaiwo does not handle yet (a Pod not owned by a workload, a
// RayCluster, a StatefulSet, ...): in an Enforce namespace, one that asks anywhere for amd.com/gpu or
// nvidia.com/gpu (any resources.limits or resources.requests in the object, so every pod template of every
// kind is covered) or claims devices through dynamic resource allocation (resources.claims) is denied with
// a message naming the supported kinds. An object whose controller (owner reference with controller: true)
// is a handled kind, a ReplicaSet or a RayCluster passes: its template was checked when its workload was.
// The owner reference is what the object says; ValidateUnhandledBy also asks who makes the request.
func (r *Registry) ValidateUnhandled(raw []byte, pol *policy.Policy) error {
	return r.validateUnhandled(raw, pol, "", false)
}

// ValidateUnhandledBy is ValidateUnhandled for a request of user: the owner reference exempts the object
// only when a controller makes the request (a service account of another namespace, such as the Job
// controller's or KubeRay's, or a system user such as system:kube-controller-manager), so that a team user
// who writes a controller reference by hand gets no GPUs past the check. An empty user (offline, unknown)
// trusts the owner reference.
func (r *Registry) ValidateUnhandledBy(raw []byte, pol *policy.Policy, user string) error {
	return r.validateUnhandled(raw, pol, user, user != "")
}

// validateUnhandled: with byController, the owner reference exempts the object only when user is a controller.
func (r *Registry) validateUnhandled(raw []byte, pol *policy.Policy, user string, byController bool) error {
	if pol == nil {
		pol = policy.Default()
	}
	if pol.Mode != policy.Enforce {
		return nil
	}
	doc := gjson.ParseBytes(raw)
	if !doc.IsObject() {
		return fmt.Errorf("decoding object: want a JSON object")
	}
	if doc.Get("metadata.deletionTimestamp").Exists() {
		return nil
	}
	controlled := r.controlledByHandled(doc)
	if controlled && (!byController || systemRequest(user, doc.Get("metadata.namespace").String())) {
		return nil
	}
	p, q := findGPU(doc.Get("spec"), field.NewPath("spec"), 0)
	if p == nil {
		return nil
	}
	kind := doc.Get("apiVersion").String() + " " + doc.Get("kind").String()
	msg := fmt.Sprintf("%s asks for GPUs (%s) in a namespace whose KaiwoPolicy %q is in Enforce mode; Kaiwo cannot yet apply the policy to a %s: use one of %s",
		p, q, pol.Name, strings.TrimSpace(kind), r.supported)
	if controlled {
		msg += fmt.Sprintf("; its controller owner reference exempts it only when a controller makes the request, not %q", user)
	}
	return &Denial{ReasonUnsupported, field.ErrorList{field.Forbidden(p, msg)}}
}

// controlledByHandled reports whether the object's controller owner reference names a handled kind, a
// ReplicaSet or a RayCluster.
func (r *Registry) controlledByHandled(doc gjson.Result) bool {
	for _, o := range doc.Get("metadata.ownerReferences").Array() {
		if o.Get("controller").Bool() && r.podOwner(o.Get("apiVersion").String(), o.Get("kind").String()) {
			return true
		}
	}
	return false
}

// maxDepth bounds the walk; the API server bounds the nesting of objects too.
const maxDepth = 64

// findGPU finds a GPU resource with a non-zero quantity under any resources.limits or resources.requests
// in v, or a non-empty resources.claims (devices of dynamic resource allocation, which may be GPUs), and
// returns its path and quantity.
func findGPU(v gjson.Result, p *field.Path, depth int) (*field.Path, string) {
	if depth > maxDepth {
		return nil, ""
	}
	var found *field.Path
	var qty string
	switch {
	case v.IsObject():
		v.ForEach(func(k, e gjson.Result) bool {
			key := k.String()
			if key == "resources" && e.IsObject() {
				if cl := e.Get("claims"); cl.IsArray() && len(cl.Array()) > 0 {
					found, qty = p.Child(key, "claims"), "devices claimed through dynamic resource allocation"
					return false
				}
				for _, list := range []string{"limits", "requests"} {
					e.Get(list).ForEach(func(r, q gjson.Result) bool {
						if _, ok := gpuVendorOf(corev1.ResourceName(r.String())); ok && !zeroQuantity(q) {
							found, qty = p.Child(key, list).Key(r.String()), q.String()
						}
						return found == nil
					})
					if found != nil {
						return false
					}
				}
			}
			found, qty = findGPU(e, p.Child(key), depth+1)
			return found == nil
		})
	case v.IsArray():
		i := 0
		v.ForEach(func(_, e gjson.Result) bool {
			found, qty = findGPU(e, p.Index(i), depth+1)
			i++
			return found == nil
		})
	}
	return found, qty
}

// zeroQuantity reports a quantity that is zero; one that does not parse counts as a request.
func zeroQuantity(v gjson.Result) bool {
	q, err := resource.ParseQuantity(v.String())
	return err == nil && q.IsZero()
}
