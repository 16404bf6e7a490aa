package policy

import (
	"maps"
	"slices"
	"strconv"
	"sync"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/silogen/kaiwo-webhook/api/v1alpha1"
)

// Index keeps the effective policy of every namespace, recomputed when
// policies, namespaces or ResourceFlavors change, so that an admission request
// costs one map lookup (For). A policy or flavor change recomputes every
// namespace; a namespace change recomputes that namespace only. Namespaces that
// select the same policies share one immutable *Policy.
//
// The zero Index is ready to use; it is safe for concurrent use.
type Index struct {
	// wmu serialises writers; it guards every field below except effective and fallback.
	wmu      sync.Mutex
	policies map[string]*v1alpha1.KaiwoPolicy
	flavors  Flavors
	compiled []*Compiled // merge order: highest priority first, then name
	byName   map[string]*Compiled
	selIndex selectorIndex
	nsLabels map[string]labels.Set
	// memo maps a set of matching policies (indices into compiled) to their merge.
	memo map[string]*Policy

	// mu guards what For reads; writers hold it only to swap results in.
	mu        sync.RWMutex
	effective map[string]*Policy
	fallback  *Policy // for namespaces the Index has not been told of
}

// NewIndex returns an empty Index: every namespace gets Default().
func NewIndex() *Index { return &Index{} }

// For returns the effective policy of namespace. A namespace the Index was not
// told of resolves as a namespace without labels. The result must not be modified.
func (x *Index) For(namespace string) *Policy {
	x.mu.RLock()
	p, ok := x.effective[namespace]
	fb := x.fallback
	x.mu.RUnlock()
	switch {
	case ok:
		return p
	case fb != nil:
		return fb
	}
	return Default()
}

// SetPolicies replaces every KaiwoPolicy, compiles them against the current
// flavors and recomputes every namespace.
func (x *Index) SetPolicies(policies []v1alpha1.KaiwoPolicy) {
	x.wmu.Lock()
	defer x.wmu.Unlock()
	x.policies = make(map[string]*v1alpha1.KaiwoPolicy, len(policies))
	for i := range policies {
		x.policies[policies[i].Name] = policies[i].DeepCopy()
	}
	x.byName = make(map[string]*Compiled, len(x.policies))
	for name, p := range x.policies {
		x.byName[name], _ = Compile(p, x.flavors.Lookup)
	}
	x.recomputeAll()
}

// SetFlavors replaces the Kueue ResourceFlavors (name to spec.nodeLabels) that
// gpusPerNodeFrom reads. Only policies that read a flavor are recompiled, and
// namespaces recomputed only when there is one.
func (x *Index) SetFlavors(flavors Flavors) {
	x.wmu.Lock()
	defer x.wmu.Unlock()
	x.flavors = maps.Clone(flavors)
	changed := false
	for name, c := range x.byName {
		if c.flavor != "" {
			x.byName[name], _ = Compile(x.policies[name], x.flavors.Lookup)
			changed = true
		}
	}
	if changed {
		x.recomputeAll()
	}
}

// SetNamespace adds or updates a namespace and recomputes its policy.
func (x *Index) SetNamespace(name string, nsLabels map[string]string) {
	x.wmu.Lock()
	defer x.wmu.Unlock()
	if old, ok := x.nsLabels[name]; ok && maps.Equal(old, nsLabels) {
		return
	}
	if x.nsLabels == nil {
		x.nsLabels = map[string]labels.Set{}
	}
	ls := labels.Set(maps.Clone(nsLabels))
	if ls == nil {
		ls = labels.Set{}
	}
	x.nsLabels[name] = ls
	p := x.resolve(ls)
	x.mu.Lock()
	if x.effective == nil {
		x.effective = map[string]*Policy{}
	}
	x.effective[name] = p
	x.mu.Unlock()
}

// DeleteNamespace forgets a namespace.
func (x *Index) DeleteNamespace(name string) {
	x.wmu.Lock()
	defer x.wmu.Unlock()
	delete(x.nsLabels, name)
	x.mu.Lock()
	delete(x.effective, name)
	x.mu.Unlock()
}

// Conflicts checks p against the policies and namespaces the Index holds, for
// the validating webhook; see ValidateSet.
func (x *Index) Conflicts(p *v1alpha1.KaiwoPolicy) field.ErrorList {
	x.wmu.Lock()
	defer x.wmu.Unlock()
	existing := make([]v1alpha1.KaiwoPolicy, 0, len(x.policies))
	for _, q := range x.policies {
		existing = append(existing, *q)
	}
	namespaces := make(map[string]map[string]string, len(x.nsLabels))
	for name, ls := range x.nsLabels {
		namespaces[name] = ls
	}
	return ValidateSet(p, existing, namespaces)
}

// recomputeAll rebuilds the compiled order, the selector index and every
// namespace's policy, then swaps the results in.
func (x *Index) recomputeAll() {
	x.compiled = slices.Collect(maps.Values(x.byName))
	sortCompiled(x.compiled)
	x.selIndex = newSelectorIndex(x.compiled)
	x.memo = map[string]*Policy{}
	effective := make(map[string]*Policy, len(x.nsLabels))
	for name, ls := range x.nsLabels {
		effective[name] = x.resolve(ls)
	}
	fallback := x.resolve(labels.Set{})
	x.mu.Lock()
	x.effective, x.fallback = effective, fallback
	x.mu.Unlock()
}

// resolve is Resolve over x.compiled, through the selector index and the memo.
func (x *Index) resolve(ls labels.Set) *Policy {
	matched := x.selIndex.matches(ls, x.compiled)
	key := make([]byte, 0, 8*len(matched))
	for _, i := range matched {
		key = strconv.AppendInt(key, int64(i), 36)
		key = append(key, ',')
	}
	if p, ok := x.memo[string(key)]; ok {
		return p
	}
	cs := make([]*Compiled, len(matched))
	for j, i := range matched {
		cs[j] = x.compiled[i]
	}
	p := merge(cs)
	if x.memo == nil {
		x.memo = map[string]*Policy{}
	}
	x.memo[string(key)] = p
	return p
}

// selectorIndex narrows the policies to test against a namespace's labels: a
// selector with an equality (or In) requirement is filed under that label key
// and its values, so only policies whose key and value the namespace has (plus
// the selectors without such a requirement) are tested. With policies that each
// select one team label, a namespace tests one policy instead of all.
type selectorIndex struct {
	byLabel map[string]map[string][]int
	always  []int
}

func newSelectorIndex(compiled []*Compiled) selectorIndex {
	x := selectorIndex{byLabel: map[string]map[string][]int{}}
	for i, c := range compiled {
		reqs, selectable := c.Selector.Requirements()
		if !selectable {
			continue // labels.Nothing(): selects no namespace
		}
		filed := false
		for _, r := range reqs {
			if op := r.Operator(); op != selection.Equals && op != selection.DoubleEquals && op != selection.In {
				continue
			}
			byValue := x.byLabel[r.Key()]
			if byValue == nil {
				byValue = map[string][]int{}
				x.byLabel[r.Key()] = byValue
			}
			for v := range r.Values() {
				byValue[v] = append(byValue[v], i)
			}
			filed = true
			break
		}
		if !filed {
			x.always = append(x.always, i)
		}
	}
	return x
}

// matches returns the indices, ascending (merge order), of the policies that select ls.
func (x *selectorIndex) matches(ls labels.Set, compiled []*Compiled) []int {
	candidates := slices.Clone(x.always)
	for k, v := range ls {
		candidates = append(candidates, x.byLabel[k][v]...)
	}
	// A policy is filed under one key, and a namespace has one value per key, so
	// the candidates hold no duplicates.
	slices.Sort(candidates)
	matched := candidates[:0]
	for _, i := range candidates {
		if compiled[i].Selector.Matches(ls) {
			matched = append(matched, i)
		}
	}
	return matched
}
