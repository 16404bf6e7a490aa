package mutate

import (
	"reflect"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// final runs the rules of the validating webhook on what the mutation produced, so that the mutation
// refuses early, with the same messages, what Validate would refuse.
func (m *mutation) final(kind Kind, opts *Options, user string) *Denial {
	if _, set := m.obj.GetLabels()[annotations.User]; set && m.old != nil {
		if errs := checkUser(m.obj, m.old, ""); len(errs) > 0 { // a dropped label is put back by record
			return &Denial{ReasonPolicy, errs}
		}
	}
	var old workload
	if m.old != nil {
		old, _ = kind.adapt(m.old, nil)
	}
	return objectRules(kind, m.obj, m.w, m.old, old, opts, m.pol, user)
}

// objectRules are the rules about the final object that the mutation and Validate share. On CREATE (old
// nil) every rule applies; on UPDATE each applies where what it reads changed (the queueing annotation,
// the Kueue labels, a pod template), and the GPU and storage limits hold growth. user is the requesting user.
func objectRules(kind Kind, obj client.Object, w workload, oldObj client.Object, old workload, opts *Options, pol *policy.Policy, user string) *Denial {
	var errs field.ErrorList
	lt := newLockedTemplate(pol, opts)
	ts, queueTs := w.templates(), w.templates()
	if old == nil {
		errs = append(errs, checkQueueing(kind, opts, pol)...)
		errs = append(errs, checkQueueLabels(obj, kind, pol)...)
	} else {
		if oldOpts, _ := annotations.ParseOptions(oldObj.GetAnnotations()); oldOpts == nil || oldOpts.Queueing != opts.Queueing {
			errs = append(errs, checkQueueing(kind, opts, pol)...)
		}
		queueChanged := labelChanged(oldObj, obj, annotations.KueueQueueName)
		if queueChanged || labelChanged(oldObj, obj, annotations.KueuePriorityClass) {
			errs = append(errs, checkQueueLabels(obj, kind, pol)...)
		}
		ts = changedTemplates(ts, old.templates())
		if !queueChanged {
			queueTs = ts
		}
		lt.kueueStart = suspended(old) && !suspended(w) && controllerOutside(user, obj.GetNamespace())
	}
	errs = append(errs, kueueErrors(obj, w)...)
	if v, ok := w.(viewer); ok {
		errs = append(errs, v.viewRules(pol, old, user)...)
	}
	errs = append(errs, checkTemplateQueues(queueTs, obj, pol)...)
	if old == nil || !reflect.DeepEqual(metaQueue(w), metaQueue(old)) || labelChanged(oldObj, obj, annotations.KueueQueueName) {
		errs = append(errs, checkQueueMeta(w, obj, kind, pol)...)
	}
	errs = append(errs, templateRules(ts, pol, lt)...)
	if len(errs) > 0 {
		return &Denial{ReasonPolicy, errs}
	}
	return workloadLimits(w, old, pol, opts)
}

// workloadLimits holds the workload to limits.maxGpusPerWorkload, then limits.maxStoragePerWorkload; on
// UPDATE (old not nil) growth only.
func workloadLimits(w, old podSource, pol *policy.Policy, opts *Options) *Denial {
	if err := checkGPULimit(w, old, pol, opts); err != nil {
		return &Denial{ReasonLimit, field.ErrorList{err}}
	}
	if err := checkStorageLimit(w, old, pol, opts); err != nil {
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

// controllerOutside reports whether user is a service account of another namespace than ns: a controller's
// (Kueue's runs in its own namespace), never a team user's, who can make service accounts only in their own.
func controllerOutside(user, ns string) bool {
	rest, ok := strings.CutPrefix(user, "system:serviceaccount:")
	saNS, _, found := strings.Cut(rest, ":")
	return ok && found && saNS != "" && saNS != ns
}
