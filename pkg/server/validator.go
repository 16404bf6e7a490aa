package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/silogen/kaiwo-webhook/api/v1alpha1"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// PolicyValidator denies KaiwoPolicies that do not validate or that conflict with existing ones.
type PolicyValidator struct {
	// Conflicts checks a policy against the ones in force (equal priority on the same namespaces).
	Conflicts func(p *v1alpha1.KaiwoPolicy) field.ErrorList
}

var _ admission.Handler = (*PolicyValidator)(nil)

// Handle validates CREATE and UPDATE.
func (v *PolicyValidator) Handle(_ context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("")
	}
	var p v1alpha1.KaiwoPolicy
	if err := json.Unmarshal(req.Object.Raw, &p); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding KaiwoPolicy: %w", err))
	}
	errs := policy.Validate(&p)
	if v.Conflicts != nil {
		errs = append(errs, v.Conflicts(&p)...)
	}
	if len(errs) > 0 {
		return admission.Denied(fmt.Sprintf("KaiwoPolicy %q: %v", p.Name, errs.ToAggregate()))
	}
	return admission.Allowed("")
}
