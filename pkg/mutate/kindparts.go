package mutate

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// Parts that several adapters share.

// queueLabels are the Kueue labels of s: the queue and, when set, the priority class.
func queueLabels(s *settings) map[string]string {
	labels := map[string]string{annotations.KueueQueueName: s.queue}
	if s.priorityClass != "" {
		labels[annotations.KueuePriorityClass] = s.priorityClass
	}
	return labels
}

// templateQueue puts the queue labels on a pod template, as Kueue's own webhooks do for the kinds whose
// pods it queues as a pod group (Deployment, StatefulSet), so the pods are queued whichever webhook runs first.
func templateQueue(t *corev1.PodTemplateSpec, s *settings) ([]string, field.ErrorList) {
	if setObjectLabels(&t.ObjectMeta, queueLabels(s)) {
		return []string{"queue labels on the pod template"}, nil
	}
	return nil, nil
}

// replicaPods is the pods of a kind that runs spec.replicas pods (default 1).
func replicaPods(replicas *int32) []pods {
	n := int64(ptr.Deref(replicas, 1))
	return []pods{{max(n, 0), fmt.Sprintf("spec.replicas=%d", n)}}
}

// createdMeta is a workload whose controller creates objects that take their labels and annotations from
// other metadata than the workload's own: a CronJob's Jobs from spec.jobTemplate.metadata. Those labels
// are what queues them.
type createdMeta interface {
	createdMeta() (meta *metav1.ObjectMeta, path *field.Path)
}

// checkQueueMeta checks the labels a createdMeta gives the objects it creates: where the object is queued (it
// carries a queue label, or must) they carry the same queue; a queue label there is held to the policy's
// allowed and locked queues and the priority class to the locked one.
func checkQueueMeta(w workload, obj client.Object, kind Kind, pol *policy.Policy) field.ErrorList {
	cm, ok := w.(createdMeta)
	if !ok {
		return nil
	}
	meta, mp := cm.createdMeta()
	labels, p := meta.Labels, mp.Child("labels")
	want, has := obj.GetLabels()[annotations.KueueQueueName]
	if _, set := labels[annotations.KueueQueueName]; !set && (has || queueEnforced(kind, pol)) {
		return field.ErrorList{field.Required(p.Key(annotations.KueueQueueName),
			fmt.Sprintf("the objects a %s creates are queued in Kueue by this label; it must name the %s's queue %q", kind.GVK.Kind, kind.GVK.Kind, cmp.Or(want, pol.Defaults.Queue, "kaiwo")))}
	}
	return checkLabelQueues(labels, p, want, has, pol)
}

// checkCreatedAnnotations denies Kaiwo annotations on the metadata a createdMeta's objects take: the objects
// its controller creates are left as the workload's mutation made them, so a Kaiwo annotation there would
// never be read (nor a bad value refused). Kaiwo's annotations go on the workload's own metadata.
func checkCreatedAnnotations(w workload, kind Kind) field.ErrorList {
	cm, ok := w.(createdMeta)
	if !ok {
		return nil
	}
	meta, mp := cm.createdMeta()
	annots, p := meta.Annotations, mp.Child("annotations")
	var errs field.ErrorList
	for _, k := range slices.Sorted(maps.Keys(annots)) {
		if strings.HasPrefix(k, annotations.Prefix) {
			errs = append(errs, field.Forbidden(p.Key(k), fmt.Sprintf("%s: %q is not read here: the objects a %s creates from this template are left as Kaiwo made the %s; put Kaiwo's annotations on the %s's own metadata.annotations",
				k, annots[k], kind.GVK.Kind, kind.GVK.Kind, kind.GVK.Kind)))
		}
	}
	return errs
}

// metaQueue is the queue label of a createdMeta's labels, for telling whether an UPDATE changed it.
func metaQueue(w workload) []string {
	cm, ok := w.(createdMeta)
	if !ok {
		return nil
	}
	meta, _ := cm.createdMeta()
	labels := meta.Labels
	return []string{labels[annotations.KueueQueueName], labels[annotations.KueuePriorityClass]}
}

// liftQueueMeta gives obj the Kueue labels of its createdMeta where obj has none of its own: a CronJob queued
// as Kueue's documentation shows (the label on the job template only) keeps that queue.
func liftQueueMeta(w workload, obj client.Object) {
	cm, ok := w.(createdMeta)
	if !ok {
		return
	}
	meta, _ := cm.createdMeta()
	labels := meta.Labels
	lift := map[string]string{}
	for _, k := range []string{annotations.KueueQueueName, annotations.KueuePriorityClass} {
		if v, set := labels[k]; set {
			if _, own := obj.GetLabels()[k]; !own {
				lift[k] = v
			}
		}
	}
	setObjectLabels(obj, lift)
}
