package mutate

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// claimsDevices reports whether a container of any template uses a device claimed through dynamic resource
// allocation (resources.claims): its GPUs, if any, are in a ResourceClaim or ResourceClaimTemplate that the
// object does not show.
func claimsDevices(ts []template) bool {
	return slices.ContainsFunc(ts, func(t template) bool {
		found := false
		containerLists(t, func(c *corev1.Container, _ *field.Path) { found = found || len(c.Resources.Claims) > 0 })
		return found
	})
}

// checkClaims denies, in an Enforce namespace, every container that uses a device claimed through dynamic
// resource allocation: Kaiwo cannot count what a claim allocates without reading it (an API call), so a
// claim would take GPUs past limits.maxGpusPerWorkload and allowedVendors unseen.
func checkClaims(ts []template, pol *policy.Policy) field.ErrorList {
	if pol.Mode != policy.Enforce {
		return nil
	}
	var errs field.ErrorList
	for _, t := range ts {
		containerLists(t, func(c *corev1.Container, p *field.Path) {
			for i, cl := range c.Resources.Claims {
				errs = append(errs, field.Forbidden(p.Child("resources", "claims").Index(i), fmt.Sprintf(
					"claim %q: devices claimed through dynamic resource allocation cannot be counted against KaiwoPolicy %q, which is in Enforce mode; ask for GPUs as resources (amd.com/gpu, nvidia.com/gpu)",
					cl.Name, pol.Name)))
			}
		})
	}
	return errs
}
