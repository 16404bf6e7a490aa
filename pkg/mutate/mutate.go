package mutate

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// Input is everything one mutation depends on.
type Input struct {
	// Kind is Object's kind, as the registry's Decode returns it.
	Kind Kind
	// Object is the decoded workload, of Kind's Go type; it is not modified.
	Object client.Object
	// Raw is the object's JSON as sent, when there is one; it shows explicit values the Go types drop.
	Raw []byte
	// Policy is the namespace's effective policy; nil means the built-in default.
	Policy *policy.Policy
	// User is the requesting user.
	User string
	// Old is the stored object of an UPDATE, nil on CREATE: the user label is kept from it, the GPU
	// limit holds only growth, and for a serving kind the values its applied record shows as Kaiwo's,
	// still unchanged in Object, are Kaiwo's to change or remove.
	Old client.Object
	// OldRaw is Old's JSON as sent, when there is one.
	OldRaw []byte
	// Create says the object is being created: a record of what Kaiwo placed that it brings is the
	// user's text and counts for nothing. Without Create or Old (an offline pass over a mutated
	// object), the object's own record is kept for what it still has.
	Create bool
}

// Output is the result of a mutation that was allowed.
type Output struct {
	// Object is the mutated copy, or the input object when it is not managed.
	Object  client.Object
	Managed bool
	// Warnings say in one line each what was injected and why; empty when nothing changed.
	Warnings []string
	// Features are the features in effect, as the applied record lists them.
	Features []string
}

// Denial is a rejected object: every reason, each naming the field, the value and what is allowed.
type Denial struct {
	// Reason is a short, bounded class of the denial, for metrics.
	Reason string
	Errs   field.ErrorList
}

// Denial reasons.
const (
	ReasonUnsupported = "unsupported-kind"
	ReasonAnnotation  = "invalid-annotation"
	ReasonPolicy      = "policy"
	ReasonShape       = "unsupported-shape"
	ReasonLimit       = "limit"
	ReasonConflict    = "conflict"
)

// Error lists the first MaxReportedErrors reasons and counts the rest.
func (d *Denial) Error() string {
	if n := len(d.Errs); n > MaxReportedErrors {
		return fmt.Sprintf("kaiwo: %s, and %d more errors", d.Errs[:MaxReportedErrors].ToAggregate().Error(), n-MaxReportedErrors)
	}
	return "kaiwo: " + d.Errs.ToAggregate().Error()
}

// Applied is the record the webhook leaves in the kaiwo.silogen.ai/applied annotation.
type Applied struct {
	Policy     string   `json:"policy"`
	Generation int64    `json:"generation"`
	Sources    []string `json:"sources,omitempty"`
	Features   []string `json:"features"`
	// Placed is what Kaiwo wrote into the object, by name; absent when it would be too large.
	Placed *Placed `json:"placed,omitempty"`
}

// Mutate Kaiwo-ifies a copy of in.Object. It is pure: no I/O, no clock, no globals that change.
func Mutate(in Input) (*Output, error) {
	kind := in.Kind
	if kind.partOf(in.Object) != "" {
		return &Output{Object: in.Object}, nil // checked as the workload it is a part of
	}
	if in.Old == nil && (fromCheckedTemplate(kind, in.Object, in.User) || ownedPod(kind, in.Object)) {
		return &Output{Object: in.Object}, nil
	}
	pol := in.Policy
	if pol == nil {
		pol = policy.Default()
	}
	obj := in.Object.DeepCopyObject().(client.Object)
	w, err := kind.adapt(obj, in.Raw)
	if err != nil {
		return nil, err
	}
	if errs := checkCreatedAnnotations(w, kind); len(errs) > 0 { // whether or not the object asks for Kaiwo
		return nil, &Denial{ReasonAnnotation, errs}
	}
	if !isManaged(obj, w, pol) {
		return &Output{Object: in.Object}, nil
	}
	if pol.Err != nil {
		// A broken policy fails closed for the objects it would govern; the rest pass.
		return nil, &Denial{ReasonPolicy, field.ErrorList{field.InternalError(field.NewPath("metadata", "namespace"),
			fmt.Errorf("the namespace's policy cannot be applied until an admin fixes it: %w", pol.Err))}}
	}
	m := &mutation{kind: kind, w: w, obj: obj, pol: pol, old: in.Old}
	if err := m.own(in, kind); err != nil {
		return nil, err
	}
	if d := m.run(in.User); d != nil {
		return nil, d
	}
	if m.stripped != nil {
		restoreOrder(m.inW, w)
		if q := m.quieter(in, kind, in.User); q != nil {
			m, obj = q, q.obj
		}
	}
	if len(m.warnings) > 0 && apiequality.Semantic.DeepEqual(in.Object, obj) {
		// Steps may undo each other (an admin patch that rewrites a list a default extends):
		// what counts is the result, and a second pass must be silent.
		m.warnings = nil
	}
	return &Output{Object: obj, Managed: true, Warnings: m.warnings, Features: m.features}, nil
}

// isManaged: a Kaiwo annotation or the managed label, or a GPU request in an Enforce namespace.
func isManaged(obj client.Object, w workload, pol *policy.Policy) bool {
	for k := range obj.GetAnnotations() {
		if annotations.IsKaiwo(k) {
			return true
		}
	}
	if obj.GetLabels()[annotations.Managed] == "true" {
		return true
	}
	return pol.Mode == policy.Enforce && (requestsGPUs(w.templates()) || claimsDevices(w.templates()))
}

type mutation struct {
	kind     Kind
	w        workload
	obj      client.Object
	pol      *policy.Policy
	old      client.Object // on UPDATE
	s        *settings
	warnings []string
	features []string
	// inW adapts the input object, for the record of what Kaiwo placed; stripped is what was Kaiwo's
	// in the old object and taken out for this pass (UPDATE), carried what the input's record shows
	// (no old object).
	inW             workload
	stripped, carry *Placed
}

func (m *mutation) warn(format string, args ...any) {
	m.warnings = append(m.warnings, "kaiwo: "+fmt.Sprintf(format, args...))
}

func (m *mutation) run(user string) *Denial {
	kind := m.kind
	opts, errs := annotations.ParseOptions(m.obj.GetAnnotations())
	if len(errs) > 0 {
		return &Denial{ReasonAnnotation, errs}
	}
	ts := m.w.templates() // as the input has them
	if errs := checkLimits(ts, opts); len(errs) > 0 {
		return &Denial{ReasonLimit, errs}
	}
	liftQueueMeta(m.w, m.obj)
	s, errs := resolveSettings(m.obj, kind, opts, m.pol)
	m.s = s
	if m.old == nil { // early, before the steps place GPUs; final checks the result, on UPDATE what changed
		errs = append(errs, checkQueueing(kind, opts, m.pol)...)
		errs = append(errs, checkVendors(m.w.templates(), m.pol)...)
	}
	if len(errs) > 0 {
		return &Denial{ReasonPolicy, errs}
	}
	if errs := m.w.check(); len(errs) > 0 {
		return &Denial{ReasonShape, errs}
	}
	p, errs := m.w.plan(s)
	if len(errs) > 0 {
		return &Denial{ReasonShape, errs}
	}
	if err := m.storageLimit(); err != nil {
		return &Denial{ReasonLimit, field.ErrorList{err}}
	}
	// The GPU limit is checked on the final object (see final), where every container counts.
	steps := []func(plan) field.ErrorList{m.queue, m.ttl, m.podTemplatePatch, m.gpus, m.storage, m.templates}
	for _, step := range steps {
		if errs := step(p); len(errs) > 0 {
			return &Denial{ReasonConflict, errs}
		}
	}
	if v, ok := m.w.(viewer); ok {
		if errs := v.sync(); len(errs) > 0 {
			return &Denial{ReasonShape, errs}
		}
	}
	if d := m.final(kind, opts, user); d != nil {
		return d
	}
	// The plan is explained only when something changed: a second pass is silent.
	if len(m.warnings) > 0 {
		notes := make([]string, 0, len(p.notes)+len(m.warnings))
		for _, n := range p.notes {
			notes = append(notes, "kaiwo: "+n)
		}
		m.warnings = append(notes, m.warnings...)
	}
	if d := checkPatchFloor(ts, m.inW, m.w); d != nil {
		return d
	}
	m.record(user)
	return nil
}

func (m *mutation) queue(plan) field.ErrorList {
	s := m.s
	if !s.queued {
		return nil
	}
	m.features = append(m.features, "queue")
	changed := setObjectLabels(m.obj, queueLabels(s))
	notes, errs := m.w.queue(s)
	if len(errs) > 0 {
		return errs
	}
	if changed || len(notes) > 0 {
		msg := fmt.Sprintf("queued in LocalQueue %s (%s)", s.queue, s.queueFrom)
		if s.priorityClass != "" {
			msg += fmt.Sprintf(" with priority class %s", s.priorityClass)
		}
		if len(notes) > 0 {
			msg += "; " + strings.Join(notes, ", ")
		}
		m.warn("%s", msg)
	}
	return nil
}

func (m *mutation) ttl(plan) field.ErrorList {
	f, ok := m.w.(finisher)
	if !ok || m.s.ttl == nil {
		return nil
	}
	cur, path, applies := f.ttl()
	want := *m.s.ttl
	if !applies {
		if m.s.opts.TTL != nil {
			return field.ErrorList{field.Invalid(annotationsPath.Key(annotations.TTLSecondsAfter), fmt.Sprint(want),
				"this object cannot take a TTL: KubeRay needs shutdownAfterJobFinishes: true and no deletionRules for it")}
		}
		return nil
	}
	m.features = append(m.features, "ttl")
	switch {
	case cur == nil:
		f.setTTL(want)
		if now, _, _ := f.ttl(); now != nil {
			m.warn("ttlSecondsAfterFinished=%d", want)
		}
	case *cur != want && (m.s.opts.TTL != nil || m.pol.IsLocked(policy.FieldTTL)):
		return field.ErrorList{field.Invalid(path, *cur, fmt.Sprintf("conflicts with the TTL of %d that Kaiwo sets (annotation or locked policy); remove one of them", want))}
	}
	return nil
}

func (m *mutation) gpus(p plan) field.ErrorList {
	s := m.s
	if p.target == nil {
		if s.gpus != nil {
			m.features = append(m.features, "gpus")
		}
		return nil
	}
	m.features = append(m.features, "gpus")
	for _, t := range append([]template{*p.target}, p.also...) {
		c, cp, err := appContainer(t, s.opts.Container)
		if err != nil {
			return field.ErrorList{err}
		}
		d := &m.pol.Defaults
		changed, err := setGPUs(c, cp, s.resource, int64(p.perReplica), d.CPUPerGPU, d.MemoryPerGPU)
		if err != nil {
			return field.ErrorList{err}
		}
		if changed {
			m.warn("%d %s on container %s of %s; CPU and memory at %s and %s per GPU where the container set none; requests equal to limits",
				p.perReplica, s.resource, c.Name, t.name(), d.CPUPerGPU.String(), d.MemoryPerGPU.String())
		}
	}
	return nil
}

// record writes the managed and user labels and the applied annotation.
func (m *mutation) record(user string) {
	labels := map[string]string{annotations.Managed: "true"}
	if u := m.userLabel(user); u != "" {
		labels[annotations.User] = u
	}
	setObjectLabels(m.obj, labels)
	sort.Strings(m.features)
	m.features = slices.Compact(m.features)
	rec := Applied{Policy: m.pol.Name, Generation: m.pol.Generation, Features: m.features,
		Placed: placed(m.inW, m.w, m.inW.object(), m.obj, m.stripped, m.carry)}
	if len(m.pol.Sources) > 1 {
		for _, src := range m.pol.Sources {
			rec.Sources = append(rec.Sources, fmt.Sprintf("%s/%d", src.Name, src.Generation))
		}
	}
	b, _ := json.Marshal(rec)
	if rec.Placed != nil && len(b) > maxRecordBytes { // the rest of the record is small
		rec.Placed = nil
		b, _ = json.Marshal(rec)
	}
	a := m.obj.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[annotations.Applied] = string(b)
	m.obj.SetAnnotations(a)
}

var unsafeLabel = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// LabelSafe turns a user name into a label value: other characters become '-', ends are alphanumeric,
// and a name over 63 characters keeps its start and a hash of the whole.
func LabelSafe(user string) string {
	v := strings.Trim(unsafeLabel.ReplaceAllString(user, "-"), "-._")
	if len(v) > 63 {
		v = truncHash(v, user)
	}
	return v
}

func setObjectLabels(obj metav1.Object, labels map[string]string) bool {
	cur := obj.GetLabels()
	changed := false
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if cur[k] != labels[k] {
			if cur == nil {
				cur = map[string]string{}
			}
			cur[k] = labels[k]
			changed = true
		}
	}
	if changed {
		obj.SetLabels(cur)
	}
	return changed
}
