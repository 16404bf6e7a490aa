package mutate

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
)

// An UPDATE of a serving kind (Deployment, RayService) carries Kaiwo's earlier values: a client-side
// apply or a Helm upgrade keeps, by its three-way merge, what Kaiwo added on the live object. The old
// object's record says which values Kaiwo placed. Those still unchanged in the new object are taken
// out before the mutation, which then places what the annotations ask for now: a changed annotation
// changes them, a removed one removes them. A value the user wrote, or changed, stays and conflicts as
// on create.

// strip removes from obj (adapted as w) the values that old's record shows as Kaiwo's and that obj
// still has unchanged, and returns them as a record.
func strip(old client.Object, oldW, w workload, obj client.Object) *Placed {
	return stripRecord(readPlaced(old), old, oldW, w, obj)
}

// stripRecord is strip of the values rec names.
func stripRecord(rec *Placed, old client.Object, oldW, w workload, obj client.Object) *Placed {
	if rec == nil {
		return nil
	}
	out := &Placed{}
	if ls := stripLabels(rec.Labels, old.GetLabels(), obj.GetLabels()); len(ls) > 0 {
		out.Labels = ls
		obj.SetLabels(obj.GetLabels()) // the map was changed in place
	}
	olds, news := templatesByPath(oldW), templatesByPath(w)
	for path, pt := range rec.Templates {
		ot, nt := olds[path], news[path]
		if ot == nil || nt == nil {
			continue
		}
		st := out.template(path)
		st.Labels = stripLabels(pt.Labels, ot.Labels, nt.Labels)
		ops, nps := &ot.Spec, &nt.Spec
		for _, name := range pt.Volumes {
			if i := volumeIndex(nps, name); equalAt(nps.Volumes, i, ops.Volumes, volumeIndex(ops, name)) {
				nps.Volumes = slices.Delete(nps.Volumes, i, i+1)
				add(&st.Volumes, name)
			}
		}
		for _, name := range pt.PullSecrets {
			if i := pullSecretIndex(nps, name); i >= 0 && pullSecretIndex(ops, name) >= 0 {
				nps.ImagePullSecrets = slices.Delete(nps.ImagePullSecrets, i, i+1)
				add(&st.PullSecrets, name)
			}
		}
		for _, key := range pt.NodeAffinity {
			if isProductLabel(key) && stripNodeAffinity(nps, ops, key) {
				add(&st.NodeAffinity, key)
			}
		}
		nps.Tolerations = slices.DeleteFunc(nps.Tolerations, func(t corev1.Toleration) bool {
			mine := has(pt.Tolerations, tolerationKey(t)) && slices.ContainsFunc(ops.Tolerations, func(o corev1.Toleration) bool {
				return apiequality.Semantic.DeepEqual(o, t)
			})
			if mine {
				add(&st.Tolerations, tolerationKey(t))
			}
			return mine
		})
		for name, pc := range pt.Containers {
			oc, nc := containerNamed(ops.Containers, name), containerNamed(nps.Containers, name)
			if oc == nil || nc == nil {
				continue
			}
			sc := st.container(name)
			oldRes, newRes := resourceKeys(oc.Resources), resourceKeys(nc.Resources)
			for _, key := range pc.Resources {
				if r, ok := newRes[key]; ok && r.equal(oldRes[key]) {
					delete(r.list, r.name)
					add(&sc.Resources, key)
				}
			}
			dropEmpty(&nc.Resources)
			for _, name := range pc.Env {
				if i := envNamed(nc, name); equalAt(nc.Env, i, oc.Env, envNamed(oc, name)) {
					nc.Env = slices.Delete(nc.Env, i, i+1)
					add(&sc.Env, name)
				}
			}
			for _, p := range pc.Mounts {
				if i := mountAt(nc, p); equalAt(nc.VolumeMounts, i, oc.VolumeMounts, mountAt(oc, p)) {
					nc.VolumeMounts = slices.Delete(nc.VolumeMounts, i, i+1)
					add(&sc.Mounts, p)
				}
			}
		}
	}
	return out
}

// stripLabels deletes from cur the keys Kaiwo set that old and cur have with the same value.
func stripLabels(keys []string, old, cur map[string]string) []string {
	var out []string
	for _, k := range keys {
		if v, ok := cur[k]; ok && k != annotations.User && old[k] == v {
			delete(cur, k)
			add(&out, k)
		}
	}
	return out
}

func dropEmpty(rr *corev1.ResourceRequirements) {
	if rr.Limits != nil && len(rr.Limits) == 0 {
		rr.Limits = nil
	}
	if rr.Requests != nil && len(rr.Requests) == 0 {
		rr.Requests = nil
	}
}

// placed is the record of what Kaiwo wrote: what the output has that the input did not (or had
// otherwise), plus what was Kaiwo's before and is still there (known, a record that was stripped or
// carried) and is still in the output.
func placed(inW, outW workload, in, out client.Object, known ...*Placed) *Placed {
	p := &Placed{}
	for k, v := range out.GetLabels() {
		if k == annotations.User {
			continue
		}
		if cur, ok := in.GetLabels()[k]; !ok || cur != v || anyHas(known, func(r *Placed) []string { return r.Labels }, k) {
			add(&p.Labels, k)
		}
	}
	ins := templatesByPath(inW)
	size := 0 // a lower bound of the record's JSON: names and keys without their quotes and commas
	for _, t := range outW.templates() {
		path := t.key()
		it, ot := ins[path], t.spec
		if it == nil {
			continue
		}
		knownT := make([]*PlacedTemplate, 0, len(known))
		for _, r := range known {
			knownT = append(knownT, r.lookup(path))
		}
		pt := &PlacedTemplate{}
		for k, v := range ot.Labels {
			if cur, ok := it.Labels[k]; !ok || cur != v || anyHasT(knownT, func(r *PlacedTemplate) []string { return r.Labels }, k) {
				add(&pt.Labels, k)
			}
		}
		ips, ops := &it.Spec, &ot.Spec
		for i, v := range ops.Volumes {
			if !equalAt(ops.Volumes, i, ips.Volumes, volumeIndex(ips, v.Name)) || anyHasT(knownT, func(r *PlacedTemplate) []string { return r.Volumes }, v.Name) {
				add(&pt.Volumes, v.Name)
			}
		}
		for _, r := range ops.ImagePullSecrets {
			if pullSecretIndex(ips, r.Name) < 0 || anyHasT(knownT, func(r *PlacedTemplate) []string { return r.PullSecrets }, r.Name) {
				add(&pt.PullSecrets, r.Name)
			}
		}
		for _, tol := range ops.Tolerations {
			ours := !slices.ContainsFunc(ips.Tolerations, func(o corev1.Toleration) bool { return apiequality.Semantic.DeepEqual(o, tol) })
			if ours || anyHasT(knownT, func(r *PlacedTemplate) []string { return r.Tolerations }, tolerationKey(tol)) {
				add(&pt.Tolerations, tolerationKey(tol))
			}
		}
		pt.NodeAffinity = placedAffinity(ips, ops, func(key string) bool {
			return anyHasT(knownT, func(r *PlacedTemplate) []string { return r.NodeAffinity }, key)
		})
		inC := indexContainers(ips.Containers)
		for ci := range ops.Containers {
			oc := &ops.Containers[ci]
			ic := inC.named(oc.Name)
			if ic == nil {
				continue
			}
			knownC := make([]*PlacedContainer, 0, len(knownT))
			for _, r := range knownT {
				knownC = append(knownC, r.lookup(oc.Name))
			}
			pc := &PlacedContainer{}
			inRes := resourceKeys(ic.Resources)
			for key, r := range resourceKeys(oc.Resources) {
				if !r.equal(inRes[key]) || anyHasC(knownC, func(r *PlacedContainer) []string { return r.Resources }, key) {
					add(&pc.Resources, key)
				}
			}
			for i, e := range oc.Env {
				if !equalAt(oc.Env, i, ic.Env, envNamed(ic, e.Name)) || anyHasC(knownC, func(r *PlacedContainer) []string { return r.Env }, e.Name) {
					add(&pc.Env, e.Name)
				}
			}
			for i, m := range oc.VolumeMounts {
				if !equalAt(oc.VolumeMounts, i, ic.VolumeMounts, mountAt(ic, m.MountPath)) || anyHasC(knownC, func(r *PlacedContainer) []string { return r.Mounts }, m.MountPath) {
					add(&pc.Mounts, m.MountPath)
				}
			}
			if len(pc.Resources)+len(pc.Env)+len(pc.Mounts) > 0 {
				pt.container(oc.Name)
				pt.Containers[oc.Name] = pc
				if size += recordedBytes(oc.Name, pc); size > maxRecordBytes {
					return nil // record would leave it out: stop before walking the other containers
				}
			}
		}
		if len(pt.Labels)+len(pt.Volumes)+len(pt.PullSecrets)+len(pt.Tolerations)+len(pt.NodeAffinity)+len(pt.Containers) > 0 {
			p.template(path)
			p.Templates[path] = pt
		}
	}
	return p.bounded()
}

// maxRecordBytes is the applied record's size past which record leaves the placed record out.
const maxRecordBytes = maxPlacedBytes + 1024

// recordedBytes is a lower bound of the JSON of container name's entry in the record.
func recordedBytes(name string, pc *PlacedContainer) int {
	n := len(name)
	for _, l := range [][]string{pc.Resources, pc.Env, pc.Mounts} {
		for _, k := range l {
			n += len(k)
		}
	}
	return n
}

func anyHas(rs []*Placed, f func(*Placed) []string, v string) bool {
	return slices.ContainsFunc(rs, func(r *Placed) bool { return r != nil && has(f(r), v) })
}

func anyHasT(rs []*PlacedTemplate, f func(*PlacedTemplate) []string, v string) bool {
	return slices.ContainsFunc(rs, func(r *PlacedTemplate) bool { return r != nil && has(f(r), v) })
}

func anyHasC(rs []*PlacedContainer, f func(*PlacedContainer) []string, v string) bool {
	return slices.ContainsFunc(rs, func(r *PlacedContainer) bool { return r != nil && has(f(r), v) })
}

// restoreOrder puts the entries of out's lists that in also has back where in had them, so that
// taking Kaiwo's values out and placing them again does not reorder a pod template (a rollout).
func restoreOrder(inW, outW workload) {
	ins := templatesByPath(inW)
	for _, t := range outW.templates() {
		it := ins[t.key()]
		if it == nil {
			continue
		}
		ips, ops := &it.Spec, &t.spec.Spec
		reorder(ops.Volumes, ips.Volumes, func(v corev1.Volume) string { return v.Name })
		reorder(ops.ImagePullSecrets, ips.ImagePullSecrets, func(r corev1.LocalObjectReference) string { return r.Name })
		reorderAffinity(ops, ips)
		reorder(ops.Tolerations, ips.Tolerations, func(t corev1.Toleration) string {
			return t.Key + "|" + string(t.Operator) + "|" + t.Value + "|" + string(t.Effect)
		})
		inC := indexContainers(ips.Containers)
		for i := range ops.Containers {
			ic := inC.named(ops.Containers[i].Name)
			if ic == nil {
				continue
			}
			reorder(ops.Containers[i].Env, ic.Env, func(e corev1.EnvVar) string { return e.Name })
			reorder(ops.Containers[i].VolumeMounts, ic.VolumeMounts, func(m corev1.VolumeMount) string { return m.MountPath })
		}
	}
}

// reorder sorts out stably: entries whose key in has come first, in in's order; the others keep theirs after.
func reorder[T any](out, in []T, key func(T) string) {
	pos := make(map[string]int, len(in))
	for i, v := range in {
		if _, dup := pos[key(v)]; !dup {
			pos[key(v)] = i
		}
	}
	rank := func(v T) int {
		if i, ok := pos[key(v)]; ok {
			return i
		}
		return len(in)
	}
	slices.SortStableFunc(out, func(a, b T) int { return rank(a) - rank(b) })
}

// own prepares the record of what Kaiwo placed: on an UPDATE of a serving kind it takes out of the
// object what the old object's record shows as Kaiwo's and unchanged; without an old object it carries
// the input's own record, so that a second pass over a mutated object records the same.
func (m *mutation) own(in Input, kind Kind) error {
	inW, err := kind.adapt(in.Object, in.Raw) // the adapters wrap, they do not copy or change
	if err != nil {
		return err
	}
	m.inW = inW
	if in.Old == nil {
		if !in.Create {
			m.carry = readPlaced(in.Object)
		}
		return nil
	}
	if !kind.Update {
		return nil
	}
	oldW, err := kind.adapt(in.Old, in.OldRaw)
	if err != nil {
		return nil // an old object of another kind has no record for this one
	}
	m.stripped = strip(in.Old, oldW, m.w, m.obj)
	return nil
}
