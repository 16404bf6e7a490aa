package mutate

import (
	"cmp"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// policyQueueing is how the policy queues kind when the annotation says nothing: Jobs and RayJobs in Kueue,
// serving kinds as defaults.servingQueueing says (none unless kueue).
func policyQueueing(kind Kind, pol *policy.Policy) string {
	if kind.Serving && pol.Defaults.ServingQueueing != QueueingKueue {
		return QueueingNone
	}
	return QueueingKueue
}

// queueEnforced reports whether kind must be queued in the namespace: the policy queues it, and the policy
// is in Enforce mode or locks queue or queueing.
func queueEnforced(kind Kind, pol *policy.Policy) bool {
	return policyQueueing(kind, pol) == QueueingKueue &&
		(pol.Mode == policy.Enforce || pol.IsLocked(policy.FieldQueue) || pol.IsLocked(policy.FieldQueueing))
}

// checkQueueing denies a kaiwo.silogen.ai/queueing annotation that leaves a kind unqueued that the policy
// queues (Enforce mode, or queue or queueing locked), and any other value than the policy's where queueing
// is locked.
func checkQueueing(kind Kind, opts *Options, pol *policy.Policy) field.ErrorList {
	if opts.Queueing == "" {
		return nil
	}
	p, want := annotationsPath.Key(annotations.Queueing), policyQueueing(kind, pol)
	switch {
	case opts.Queueing == want:
		return nil
	case pol.IsLocked(policy.FieldQueueing):
		return field.ErrorList{field.Invalid(p, opts.Queueing, fmt.Sprintf("is locked by KaiwoPolicy %q: a %s is queued %q there and cannot be changed", pol.Name, kind.GVK.Kind, want))}
	case opts.Queueing == QueueingNone && queueEnforced(kind, pol):
		var whys []string
		if pol.Mode == policy.Enforce {
			whys = append(whys, "mode is Enforce")
		}
		if pol.IsLocked(policy.FieldQueue) {
			whys = append(whys, "queue is locked")
		}
		why := strings.Join(whys, ", ")
		return field.ErrorList{field.Invalid(p, opts.Queueing, fmt.Sprintf("is not allowed by KaiwoPolicy %q (%s): a %s runs in Kueue's queue %q; remove the annotation", pol.Name, why, kind.GVK.Kind, cmp.Or(pol.Defaults.Queue, "kaiwo")))}
	}
	return nil
}

// checkQueueLabels checks the Kueue labels of the final object: a queue label must name an allowed queue, the
// locked one where queue is locked; the priority class the locked one where priorityClass is locked; and a
// kind the policy must queue (see queueEnforced) must carry a queue label.
func checkQueueLabels(obj client.Object, kind Kind, pol *policy.Policy) field.ErrorList {
	var errs field.ErrorList
	labels := obj.GetLabels()
	q, ok := labels[annotations.KueueQueueName]
	qp := labelsPath.Key(annotations.KueueQueueName)
	switch {
	case !ok && queueEnforced(kind, pol):
		errs = append(errs, field.Required(qp, fmt.Sprintf("a %s must be queued in Kueue under KaiwoPolicy %q: label it with an allowed queue (the mutating webhook sets %q)", kind.GVK.Kind, pol.Name, cmp.Or(pol.Defaults.Queue, "kaiwo"))))
	case !ok:
	case pol.IsLocked(policy.FieldQueue) && q != pol.Defaults.Queue:
		errs = append(errs, field.Invalid(qp, q, fmt.Sprintf("is locked by KaiwoPolicy %q: defaults.queue is %q and cannot be changed", pol.Name, pol.Defaults.Queue)))
	case !pol.Limits.QueueAllowed(q):
		errs = append(errs, field.Invalid(qp, q, fmt.Sprintf("is not allowed by KaiwoPolicy %q: limits.allowedQueues is %s", pol.Name, quoteAll(pol.Limits.AllowedQueues))))
	}
	if pc, ok := labels[annotations.KueuePriorityClass]; (ok || pol.Defaults.PriorityClass != "" && q != "") && pol.IsLocked(policy.FieldPriorityClass) && pc != pol.Defaults.PriorityClass {
		errs = append(errs, field.Invalid(labelsPath.Key(annotations.KueuePriorityClass), pc, fmt.Sprintf("is locked by KaiwoPolicy %q: defaults.priorityClass is %q and cannot be changed", pol.Name, pol.Defaults.PriorityClass)))
	}
	return errs
}

// checkTemplateQueues checks the Kueue labels of pod templates (a queued Deployment's pods carry them, as
// Kueue queues its pods by them): a queue label must be the object's, within the policy's queues; a
// priority-class label the locked one where priorityClass is locked.
func checkTemplateQueues(ts []template, obj client.Object, pol *policy.Policy) field.ErrorList {
	var errs field.ErrorList
	want, has := obj.GetLabels()[annotations.KueueQueueName]
	for _, t := range ts {
		errs = append(errs, checkLabelQueues(t.spec.Labels, t.path.Child("metadata", "labels"), want, has, pol)...)
	}
	return errs
}

// checkLabelQueues checks the Kueue labels of metadata at p that are not the object's own: a queue label
// must be the object's queue (want, when has), else an allowed one and the locked one where queue is
// locked; a priority class the locked one where priorityClass is locked.
func checkLabelQueues(labels map[string]string, p *field.Path, want string, has bool, pol *policy.Policy) field.ErrorList {
	var errs field.ErrorList
	q, ok := labels[annotations.KueueQueueName]
	qp := p.Key(annotations.KueueQueueName)
	switch {
	case !ok:
	case has && q != want:
		errs = append(errs, field.Invalid(qp, q, fmt.Sprintf("must be the object's queue %q: the pods are queued by this label", want)))
	case pol.IsLocked(policy.FieldQueue) && q != pol.Defaults.Queue:
		errs = append(errs, field.Invalid(qp, q, fmt.Sprintf("is locked by KaiwoPolicy %q: defaults.queue is %q and cannot be changed", pol.Name, pol.Defaults.Queue)))
	case !pol.Limits.QueueAllowed(q):
		errs = append(errs, field.Invalid(qp, q, fmt.Sprintf("is not allowed by KaiwoPolicy %q: limits.allowedQueues is %s", pol.Name, quoteAll(pol.Limits.AllowedQueues))))
	}
	if pc, ok := labels[annotations.KueuePriorityClass]; ok && pol.IsLocked(policy.FieldPriorityClass) && pc != pol.Defaults.PriorityClass {
		errs = append(errs, field.Invalid(p.Key(annotations.KueuePriorityClass), pc,
			fmt.Sprintf("is locked by KaiwoPolicy %q: defaults.priorityClass is %q and cannot be changed", pol.Name, pol.Defaults.PriorityClass)))
	}
	return errs
}
