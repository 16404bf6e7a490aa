package mutate

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// settings are the effective values for one object: annotations over policy defaults, checked against
// the policy's locks and limits.
type settings struct {
	pol      *policy.Policy
	kind     Kind
	opts     *Options
	gpus     *int32
	vendor   string
	resource corev1.ResourceName

	queued        bool
	queue         string
	queueFrom     string
	priorityClass string

	ttl         *int32
	shm         *resource.Quantity
	shmExplicit bool
	pullSecret  string
	codePath    string
	// storage is the size of the workload volume at /workload, nil for none; storageClass its class.
	storage      *resource.Quantity
	storageClass string
}

var annotationsPath = field.NewPath("metadata", "annotations")
var labelsPath = field.NewPath("metadata", "labels")

// env is the plain values of the env annotation, for planning.
func (s *settings) env() map[string]string {
	out := map[string]string{}
	if s.opts.Env != nil {
		for _, e := range s.opts.Env.EnvVars {
			if e.Value != nil {
				out[e.Name] = *e.Value
			}
		}
	}
	return out
}

func resolveSettings(obj client.Object, kind Kind, o *Options, pol *policy.Policy) (*settings, field.ErrorList) {
	s := &settings{pol: pol, kind: kind, opts: o, gpus: o.GPUs}
	d, l := &pol.Defaults, &pol.Limits
	var errs field.ErrorList
	locked := func(key, name string, got, want string) {
		if pol.IsLocked(name) && got != want {
			errs = append(errs, field.Invalid(annotationsPath.Key(key), got,
				fmt.Sprintf("is locked by KaiwoPolicy %q: defaults.%s is %q and cannot be changed", pol.Name, name, want)))
		}
	}

	s.vendor = cmp.Or(o.GPUVendor, d.GPUVendor, "amd")
	s.resource = corev1.ResourceName(annotations.VendorResource(s.vendor))
	if o.GPUVendor != "" {
		locked(annotations.GPUVendor, policy.FieldGPUVendor, o.GPUVendor, d.GPUVendor)
	}
	if !l.VendorAllowed(s.vendor) {
		errs = append(errs, field.Invalid(annotationsPath.Key(annotations.GPUVendor), s.vendor,
			fmt.Sprintf("is not allowed by KaiwoPolicy %q: limits.allowedVendors is %s", pol.Name, quoteAll(l.AllowedVendors))))
	}

	switch {
	case o.Queueing != "":
		s.queued = o.Queueing == QueueingKueue
	case o.Queue != "":
		s.queued = true
	case kind.Serving:
		s.queued = d.ServingQueueing == QueueingKueue
	default:
		s.queued = true
	}
	if o.Queueing == QueueingNone && o.Queue != "" {
		errs = append(errs, field.Invalid(annotationsPath.Key(annotations.Queue), o.Queue,
			"conflicts with kaiwo.silogen.ai/queueing: none; remove one of them"))
	}
	if s.queued {
		errs = append(errs, s.resolveQueue(obj)...)
	}

	s.ttl = d.TTLSecondsAfterFinished
	if o.TTL != nil {
		s.ttl = o.TTL
		if d.TTLSecondsAfterFinished != nil {
			locked(annotations.TTLSecondsAfter, policy.FieldTTL, fmt.Sprint(*o.TTL), fmt.Sprint(*d.TTLSecondsAfterFinished))
		}
	}
	s.shm, s.shmExplicit = nil, pol.IsLocked(policy.FieldShmSize) && d.ShmSize != nil
	if d.ShmSize != nil {
		shm := d.ShmSize.DeepCopy() // the object gets its own: the policy's is shared by every request
		s.shm = &shm
	}
	if o.ShmSize != nil {
		s.shm, s.shmExplicit = o.ShmSize, true
		if d.ShmSize != nil {
			locked(annotations.ShmSize, policy.FieldShmSize, o.ShmSize.String(), d.ShmSize.String())
		}
	}
	s.pullSecret = cmp.Or(o.PullSecret, d.ImagePullSecret)
	if o.PullSecret != "" {
		if d.ImagePullSecret != "" {
			locked(annotations.ImagePullSecret, policy.FieldImagePullSecret, o.PullSecret, d.ImagePullSecret)
		}
		if o.PullSecret != d.ImagePullSecret && !l.SecretAllowed(o.PullSecret) { // the policy's own is allowed
			errs = append(errs, secretDenied(annotationsPath.Key(annotations.ImagePullSecret), o.PullSecret, pol))
		}
	}
	if o.Env != nil {
		refs := envSecrets(o.Env, annotationsPath.Key(annotations.Env))
		for _, name := range slices.Sorted(maps.Keys(refs)) {
			if !l.SecretAllowed(name) {
				errs = append(errs, secretDenied(refs[name], name, pol))
			}
		}
	}
	s.codePath = "/workload"
	if kind.Serving {
		s.codePath = "/workload/app"
	}
	errs = append(errs, s.resolveStorage()...)
	return s, errs
}

// resolveQueue picks the queue: the annotation, else a queue label the user set, else the policy default.
func (s *settings) resolveQueue(obj client.Object) field.ErrorList {
	var errs field.ErrorList
	o, d, pol := s.opts, &s.pol.Defaults, s.pol
	labels := obj.GetLabels()
	label := labels[annotations.KueueQueueName]
	path := annotationsPath.Key(annotations.Queue)
	switch {
	case o.Queue != "":
		s.queue, s.queueFrom = o.Queue, "annotation"
		if label != "" && label != o.Queue {
			errs = append(errs, field.Invalid(labelsPath.Key(annotations.KueueQueueName), label,
				fmt.Sprintf("conflicts with kaiwo.silogen.ai/queue %q; remove one of them", o.Queue)))
		}
	case label != "":
		s.queue, s.queueFrom = label, "label"
		path = labelsPath.Key(annotations.KueueQueueName)
	default:
		s.queue, s.queueFrom = cmp.Or(d.Queue, "kaiwo"), fmt.Sprintf("default of policy %s", pol.Name)
	}
	if pol.IsLocked(policy.FieldQueue) && s.queue != d.Queue {
		errs = append(errs, field.Invalid(path, s.queue,
			fmt.Sprintf("is locked by KaiwoPolicy %q: defaults.queue is %q and cannot be changed", pol.Name, d.Queue)))
	} else if !pol.Limits.QueueAllowed(s.queue) {
		errs = append(errs, field.Invalid(path, s.queue,
			fmt.Sprintf("is not allowed by KaiwoPolicy %q: limits.allowedQueues is %s", pol.Name, quoteAll(pol.Limits.AllowedQueues))))
	}

	plabel := labels[annotations.KueuePriorityClass]
	ppath := annotationsPath.Key(annotations.PriorityClass)
	switch {
	case o.PriorityClass != "":
		s.priorityClass = o.PriorityClass
		if plabel != "" && plabel != o.PriorityClass {
			errs = append(errs, field.Invalid(labelsPath.Key(annotations.KueuePriorityClass), plabel,
				fmt.Sprintf("conflicts with kaiwo.silogen.ai/priority-class %q; remove one of them", o.PriorityClass)))
		}
	case plabel != "":
		s.priorityClass, ppath = plabel, labelsPath.Key(annotations.KueuePriorityClass)
	default:
		s.priorityClass = d.PriorityClass
	}
	if pol.IsLocked(policy.FieldPriorityClass) && s.priorityClass != d.PriorityClass {
		errs = append(errs, field.Invalid(ppath, s.priorityClass,
			fmt.Sprintf("is locked by KaiwoPolicy %q: defaults.priorityClass is %q and cannot be changed", pol.Name, d.PriorityClass)))
	}
	return errs
}

func secretDenied(p *field.Path, name string, pol *policy.Policy) *field.Error {
	var pats []string
	for _, list := range pol.Limits.AllowedSecrets {
		pats = append(pats, quoteAll(list))
	}
	return field.Invalid(p, name, fmt.Sprintf("Secret %q is not allowed by KaiwoPolicy %q: limits.allowedSecrets is %s", name, pol.Name, strings.Join(pats, " and ")))
}

func quoteAll(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = fmt.Sprintf("%q", v)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
