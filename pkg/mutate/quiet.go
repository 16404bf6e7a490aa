package mutate

import (
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// On UPDATE, Kaiwo's earlier values are taken out and placed again; those placed again exactly as
// they were are no change, and a warning about them would be noise. unchanged finds them, so that the
// mutation can run once more taking out only the others: its warnings then say what changed.

// itemOf reads the value one record entry names in an object, and whether it is there.
type itemOf func(labels map[string]string, ts map[string]*corev1.PodTemplateSpec) (any, bool)

// each calls f with every entry of p and a reader of its value.
func (p *Placed) each(f func(keep func(), read itemOf)) *Placed {
	out := &Placed{}
	for _, k := range p.Labels {
		f(func() { add(&out.Labels, k) }, func(ls map[string]string, _ map[string]*corev1.PodTemplateSpec) (any, bool) {
			v, ok := ls[k]
			return v, ok
		})
	}
	for path, pt := range p.Templates {
		tpl := func(ts map[string]*corev1.PodTemplateSpec) *corev1.PodTemplateSpec { return ts[path] }
		for _, k := range pt.Labels {
			f(func() { add(&out.template(path).Labels, k) }, func(_ map[string]string, ts map[string]*corev1.PodTemplateSpec) (any, bool) {
				if t := tpl(ts); t != nil {
					v, ok := t.Labels[k]
					return v, ok
				}
				return nil, false
			})
		}
		for _, name := range pt.Volumes {
			f(func() { add(&out.template(path).Volumes, name) }, func(_ map[string]string, ts map[string]*corev1.PodTemplateSpec) (any, bool) {
				if t := tpl(ts); t != nil {
					if i := volumeIndex(&t.Spec, name); i >= 0 {
						return t.Spec.Volumes[i], true
					}
				}
				return nil, false
			})
		}
		for _, name := range pt.PullSecrets {
			f(func() { add(&out.template(path).PullSecrets, name) }, func(_ map[string]string, ts map[string]*corev1.PodTemplateSpec) (any, bool) {
				t := tpl(ts)
				return name, t != nil && pullSecretIndex(&t.Spec, name) >= 0
			})
		}
		for _, key := range pt.NodeAffinity {
			f(func() { add(&out.template(path).NodeAffinity, key) }, func(_ map[string]string, ts map[string]*corev1.PodTemplateSpec) (any, bool) {
				if t := tpl(ts); t != nil {
					return expressionsOn(&t.Spec, key)
				}
				return nil, false
			})
		}
		for _, key := range pt.Tolerations {
			f(func() { add(&out.template(path).Tolerations, key) }, func(_ map[string]string, ts map[string]*corev1.PodTemplateSpec) (any, bool) {
				t := tpl(ts)
				if t == nil {
					return nil, false
				}
				var same []corev1.Toleration
				for _, tol := range t.Spec.Tolerations {
					if tolerationKey(tol) == key {
						same = append(same, tol)
					}
				}
				return same, len(same) > 0
			})
		}
		for cname, pc := range pt.Containers {
			ctr := func(ts map[string]*corev1.PodTemplateSpec) *corev1.Container {
				if t := tpl(ts); t != nil {
					return containerNamed(t.Spec.Containers, cname)
				}
				return nil
			}
			for _, key := range pc.Resources {
				f(func() { add(&out.template(path).container(cname).Resources, key) }, func(_ map[string]string, ts map[string]*corev1.PodTemplateSpec) (any, bool) {
					if c := ctr(ts); c != nil {
						if r, ok := resourceKeys(c.Resources)[key]; ok {
							q := r.list[r.name]
							return q.String(), true
						}
					}
					return nil, false
				})
			}
			for _, name := range pc.Env {
				f(func() { add(&out.template(path).container(cname).Env, name) }, func(_ map[string]string, ts map[string]*corev1.PodTemplateSpec) (any, bool) {
					if c := ctr(ts); c != nil {
						if i := envNamed(c, name); i >= 0 {
							return c.Env[i], true
						}
					}
					return nil, false
				})
			}
			for _, mp := range pc.Mounts {
				f(func() { add(&out.template(path).container(cname).Mounts, mp) }, func(_ map[string]string, ts map[string]*corev1.PodTemplateSpec) (any, bool) {
					if c := ctr(ts); c != nil {
						if i := mountAt(c, mp); i >= 0 {
							return c.VolumeMounts[i], true
						}
					}
					return nil, false
				})
			}
		}
	}
	return out
}

// changedOnly keeps the entries of stripped whose value in out is not what in had: removed or changed.
func changedOnly(stripped *Placed, in client.Object, inW workload, out client.Object, outW workload) (*Placed, bool) {
	ins, outs := templatesByPath(inW), templatesByPath(outW)
	dropped := false
	kept := stripped.each(func(keep func(), read itemOf) {
		a, okA := read(in.GetLabels(), ins)
		b, okB := read(out.GetLabels(), outs)
		if okA && okB && apiequality.Semantic.DeepEqual(a, b) {
			dropped = true
			return
		}
		keep()
	})
	return kept, dropped
}

// quieter runs m's mutation once more, on a fresh copy of the input, taking out only what the first
// run changed; it returns the new mutation, or nil when there is nothing to gain or it fails.
func (m *mutation) quieter(in Input, kind Kind, user string) *mutation {
	only, dropped := changedOnly(m.stripped, in.Object, m.inW, m.obj, m.w)
	if !dropped {
		return nil
	}
	obj := in.Object.DeepCopyObject().(client.Object)
	w, err := kind.adapt(obj, in.Raw)
	if err != nil {
		return nil
	}
	oldW, err := kind.adapt(in.Old, in.OldRaw)
	if err != nil {
		return nil
	}
	// The entries left in place are still Kaiwo's: the record keeps them (carry).
	q := &mutation{kind: kind, w: w, obj: obj, pol: m.pol, old: in.Old, inW: m.inW, carry: m.stripped}
	q.stripped = stripRecord(only, in.Old, oldW, w, obj)
	if q.run(user) != nil {
		return nil
	}
	restoreOrder(q.inW, w)
	return q
}
