package policy

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
)

// Resolve returns the effective policy of a namespace with the labels nsLabels,
// given every compiled KaiwoPolicy. It is a pure function; Index caches it.
//
// The policies whose namespaceSelector matches are merged, ordered by priority,
// highest first, ties broken by name (the validating webhook rejects such ties,
// see ValidateSet; a namespace label change can still make one, and then a
// default that either policy locks comes from the policy that locks it, the
// other defaults from the name that sorts first, with a warning naming both):
//
//   - none: Default(), the built-in policy, in OptIn mode;
//   - defaults: field by field, the highest-priority policy that sets a field
//     wins; a field no policy sets keeps its built-in default;
//   - limits: every matching policy's limits apply: the smallest
//     maxGpusPerWorkload, the intersection of the allowedVendors and of the
//     allowedQueues lists that are set (an empty intersection allows nothing),
//     and for Secrets one pattern list per policy, each of which must match;
//   - locked: the union;
//   - mode: Enforce if any policy says Enforce;
//   - podTemplatePatch: all patches, merged so that applying the result equals
//     applying them lowest priority first (the higher priority wins);
//   - localQueue: from the highest-priority policy that sets it; the LocalQueue
//     is named by the effective default queue;
//   - Name and Generation: of the highest-priority policy; Sources: all,
//     highest first;
//   - Err: set when any matching policy is invalid (fail closed for managed
//     objects); Warnings: what was resolved fail-open.
func Resolve(nsLabels map[string]string, compiled []*Compiled) *Policy {
	set := labels.Set(nsLabels)
	var matched []*Compiled
	for _, c := range compiled {
		if c != nil && c.Selector.Matches(set) {
			matched = append(matched, c)
		}
	}
	sortCompiled(matched)
	return merge(matched)
}

// sortCompiled orders policies as they merge: highest priority first, then by name.
func sortCompiled(cs []*Compiled) {
	slices.SortStableFunc(cs, func(a, b *Compiled) int {
		if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
}

// PodTemplatePatchMeta is the strategic merge schema of a pod template (merge keys and patch strategies),
// built once: the policy merges podTemplatePatch with it, validation checks one, and the core applies it.
var PodTemplatePatchMeta = func() strategicpatch.LookupPatchMeta {
	m, err := strategicpatch.NewPatchMetaFromStruct(corev1.PodTemplateSpec{})
	if err != nil {
		panic(err) // PodTemplateSpec is a fixed, known struct
	}
	return m
}()

// merge builds the effective policy of matched, which is in merge order.
func merge(matched []*Compiled) *Policy {
	p := Default()
	if len(matched) == 0 {
		return p
	}
	p.Name, p.Generation = matched[0].Name, matched[0].Generation
	p.Sources = make([]Source, 0, len(matched))
	var (
		done    fieldSet
		locked  []string
		patches [][]byte
		lq      = -1
		errs    []error
	)
	for i, c := range matched {
		p.Sources = append(p.Sources, Source{Name: c.Name, Generation: c.Generation})
		if c.mode == Enforce {
			p.Mode = Enforce
		}
		if i > 0 && matched[i-1].Priority == c.Priority {
			p.Warnings = append(p.Warnings, fmt.Sprintf("KaiwoPolicies %q and %q have the same priority %d and both select this namespace; "+
				"a field either locks takes the locking policy's value, other fields come from %q (by name)",
				matched[i-1].Name, c.Name, c.Priority, matched[i-1].Name))
		}
		if i == 0 || matched[i-1].Priority != c.Priority {
			// Among policies of equal priority, a lock wins over the other's default: never the weaker value.
			for _, t := range matched[i:] {
				if t.Priority != c.Priority {
					break
				}
				take := t.set & lockedSet(t.locked) &^ done
				mergeDefaults(&p.Defaults, &t.defaults, take)
				done |= take
			}
		}
		mergeDefaults(&p.Defaults, &c.defaults, c.set&^done)
		done |= c.set
		mergeLimits(&p.Limits, c)
		locked = append(locked, c.locked...)
		if c.patch != nil {
			patches = append(patches, c.patch)
		}
		if lq < 0 && c.localQueue != nil {
			lq = i
		}
		if len(c.Errors) > 0 {
			errs = append(errs, fmt.Errorf("KaiwoPolicy %q is invalid: %w", c.Name, c.Errors.ToAggregate()))
		}
		for _, w := range c.Warnings {
			p.Warnings = append(p.Warnings, fmt.Sprintf("KaiwoPolicy %q: %s", c.Name, w))
		}
	}
	slices.Sort(locked)
	p.Locked = slices.Compact(locked)
	if lq >= 0 && matched[lq].localQueue.Create {
		p.LocalQueue = &LocalQueue{Name: p.Defaults.Queue, ClusterQueue: cmp.Or(matched[lq].localQueue.ClusterQueue, defaultClusterQueue)}
	}
	slices.Reverse(patches) // lowest priority first, so the highest is applied last
	patch, err := mergePatches(patches)
	if err != nil {
		errs = append(errs, fmt.Errorf("the podTemplatePatches of KaiwoPolicies %v do not merge: %w", sourceNames(p.Sources), err))
	}
	p.PodTemplatePatch = patch
	p.Err = errors.Join(errs...)
	if !p.Limits.QueueAllowed(p.Defaults.Queue) {
		p.Warnings = append(p.Warnings, fmt.Sprintf("the default queue %q is not an allowed queue %q; workloads must name one", p.Defaults.Queue, p.Limits.AllowedQueues))
	}
	if !p.Limits.VendorAllowed(p.Defaults.GPUVendor) {
		p.Warnings = append(p.Warnings, fmt.Sprintf("the default GPU vendor %q is not an allowed vendor %q; workloads must name one", p.Defaults.GPUVendor, p.Limits.AllowedVendors))
	}
	return p
}

// lockedFields maps the lockable fields to the defaults they lock.
var lockedFields = map[string]fieldSet{
	FieldQueue: setQueue, FieldGPUVendor: setGPUVendor, FieldShmSize: setShmSize, FieldTTL: setTTL,
	FieldPriorityClass: setPriorityClass, FieldImagePullSecret: setImagePullSecret, FieldTolerations: setTolerations,
	FieldNodeSelector: setNodeSelector, FieldAffinity: setAffinity, FieldQueueing: setServingQueueing,
}

func lockedSet(locked []string) fieldSet {
	var s fieldSet
	for _, f := range locked {
		s |= lockedFields[f]
	}
	return s
}

// mergeDefaults copies the fields in take from src to dst.
func mergeDefaults(dst, src *Defaults, take fieldSet) {
	if take&setQueue != 0 {
		dst.Queue = src.Queue
	}
	if take&setGPUVendor != 0 {
		dst.GPUVendor = src.GPUVendor
	}
	if take&setGPUsPerNode != 0 {
		dst.GPUsPerNode = src.GPUsPerNode
	}
	if take&setCPUPerGPU != 0 {
		dst.CPUPerGPU = src.CPUPerGPU
	}
	if take&setMemoryPerGPU != 0 {
		dst.MemoryPerGPU = src.MemoryPerGPU
	}
	if take&setShmSize != 0 {
		dst.ShmSize = src.ShmSize
	}
	if take&setTTL != 0 {
		dst.TTLSecondsAfterFinished = src.TTLSecondsAfterFinished
	}
	if take&setPriorityClass != 0 {
		dst.PriorityClass = src.PriorityClass
	}
	if take&setServingQueueing != 0 {
		dst.ServingQueueing = src.ServingQueueing
	}
	if take&setImagePullSecret != 0 {
		dst.ImagePullSecret = src.ImagePullSecret
	}
	if take&setTolerations != 0 {
		dst.Tolerations = src.Tolerations
	}
	if take&setNodeSelector != 0 {
		dst.NodeSelector = src.NodeSelector
	}
	if take&setAffinity != 0 {
		dst.Affinity = src.Affinity
	}
	if take&setStorage != 0 {
		dst.StorageSize, dst.StorageClass = src.StorageSize, src.StorageClass
	}
}

func mergeLimits(l *Limits, c *Compiled) {
	if c.maxGPUs > 0 && (l.MaxGPUsPerWorkload == 0 || c.maxGPUs < l.MaxGPUsPerWorkload) {
		l.MaxGPUsPerWorkload = c.maxGPUs
	}
	if c.maxStorage != nil && (l.MaxStoragePerWorkload == nil || c.maxStorage.Cmp(*l.MaxStoragePerWorkload) < 0) {
		l.MaxStoragePerWorkload = c.maxStorage
	}
	l.AllowedVendors = intersect(l.AllowedVendors, c.vendors)
	l.AllowedQueues = intersect(l.AllowedQueues, c.queues)
	if c.secrets != nil {
		l.AllowedSecrets = append(l.AllowedSecrets, c.secrets)
	}
}

// intersect intersects two allow lists where nil means unbounded. The result is
// sorted, and empty but non-nil when nothing is allowed.
func intersect(have, add []string) []string {
	switch {
	case add == nil:
		return have
	case have == nil:
		out := slices.Clone(add)
		slices.Sort(out)
		return slices.Compact(out)
	}
	out := make([]string, 0, len(have))
	for _, s := range have {
		if slices.Contains(add, s) {
			out = append(out, s)
		}
	}
	return out
}

// mergePatches merges strategic merge patches, given lowest priority first, into
// one whose application equals applying each in turn.
func mergePatches(patches [][]byte) ([]byte, error) {
	switch len(patches) {
	case 0:
		return nil, nil
	case 1:
		return patches[0], nil
	}
	maps := make([]strategicpatch.JSONMap, len(patches))
	for i, raw := range patches {
		// Fresh maps each time: the merge writes into and shares its inputs.
		if err := json.Unmarshal(raw, &maps[i]); err != nil {
			return nil, err
		}
	}
	merged, err := strategicpatch.MergeStrategicMergeMapPatchUsingLookupPatchMeta(PodTemplatePatchMeta, maps...)
	if err != nil {
		return nil, err
	}
	return json.Marshal(merged)
}

func sourceNames(sources []Source) []string {
	names := make([]string, len(sources))
	for i, s := range sources {
		names[i] = s.Name
	}
	return names
}
