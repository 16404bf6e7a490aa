package mutate

import (
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
)

// final runs the rules of the validating webhook on what the mutation produced, so that the mutation
// refuses early, with the same messages, what Validate would refuse.
func (m *mutation) final(kind Kind, opts *Options) *Denial {
	errs := checkQueueLabels(m.obj, kind, m.pol)
	errs = append(errs, checkTemplateQueues(m.w.templates(), m.obj, m.pol)...)
	errs = append(errs, templateRules(m.w.templates(), m.pol, newLockedTemplate(m.pol, opts))...)
	if _, set := m.obj.GetLabels()[annotations.User]; set && m.old != nil {
		errs = append(errs, checkUser(m.obj, m.old, "")...) // a dropped label is put back by record
	}
	if len(errs) > 0 {
		return &Denial{ReasonPolicy, errs}
	}
	var old workload
	if m.old != nil {
		if k, ok := KindOf(m.old); ok {
			old, _ = k.adapt(m.old, nil)
		}
	}
	if err := checkGPULimit(m.w, old, m.pol, opts); err != nil {
		return &Denial{ReasonLimit, field.ErrorList{err}}
	}
	return nil
}

// userLabel is the user label the record carries: on CREATE the requesting user, whatever the object says
// (a Job a CronJob creates records the CronJob controller); on UPDATE the one recorded at creation, put
// back if the update dropped it.
func (m *mutation) userLabel(user string) string {
	if m.old != nil {
		if was := m.old.GetLabels()[annotations.User]; was != "" {
			return was
		}
		return ""
	}
	return LabelSafe(user)
}
