package mutate

import (
	"fmt"
	"math/big"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// storageCount is the storage a workload's pods claim through generic ephemeral volumes: Kaiwo's workload
// volume and any the user writes, each pod its own claim.
type storageCount struct {
	total *big.Rat
	// largest is the volume with the largest share (pods x size), named in messages.
	largest      *field.Path
	largestSize  string
	largestShare *big.Rat
	parts        []string
}

// countStorage adds up, over every template of w, its pods x the storage its ephemeral volume claim
// templates request. Exact arithmetic: no size or product wraps.
func countStorage(w podSource) storageCount {
	c := storageCount{total: new(big.Rat), largestShare: new(big.Rat)}
	ts, ns := w.templates(), w.pods()
	for i, t := range ts {
		pods := new(big.Rat).SetInt64(ns[i].n)
		perPod := new(big.Rat)
		for j, v := range t.spec.Spec.Volumes {
			if v.Ephemeral == nil || v.Ephemeral.VolumeClaimTemplate == nil {
				continue
			}
			q, ok := v.Ephemeral.VolumeClaimTemplate.Spec.Resources.Requests[corev1.ResourceStorage]
			if !ok {
				continue
			}
			size, ok := new(big.Rat).SetString(q.AsDec().String())
			if !ok || size.Sign() <= 0 {
				continue
			}
			perPod.Add(perPod, size)
			if share := new(big.Rat).Mul(size, pods); share.Cmp(c.largestShare) > 0 {
				c.largestShare = share
				c.largest = t.path.Child("spec", "volumes").Index(j).Child("ephemeral", "volumeClaimTemplate", "spec", "resources", "requests").Key(string(corev1.ResourceStorage))
				c.largestSize = q.String()
			}
		}
		if perPod.Sign() == 0 || ns[i].n == 0 {
			continue
		}
		c.total.Add(c.total, new(big.Rat).Mul(perPod, pods))
		c.parts = append(c.parts, fmt.Sprintf("%s: %d pods (%s) x %s", t.name(), ns[i].n, ns[i].why, bytesString(perPod)))
	}
	return c
}

// bytesString writes a number of bytes as a quantity, in binary units where they divide it.
func bytesString(r *big.Rat) string {
	n, ok := new(big.Int).SetString(r.FloatString(0), 10)
	if !ok || !n.IsInt64() {
		return r.FloatString(0)
	}
	return resource.NewQuantity(n.Int64(), resource.BinarySI).String()
}

// checkStorageLimit holds the storage of the workload's generic ephemeral volumes over all its pods to
// limits.maxStoragePerWorkload, whoever wrote the volumes. When old is not nil (an UPDATE), a total that did
// not grow passes. The error names the kaiwo.silogen.ai/storage annotation when opts has it, else the
// volume with the largest share.
func checkStorageLimit(w, old podSource, pol *policy.Policy, opts *Options) *field.Error {
	if pol.Limits.MaxStoragePerWorkload == nil {
		return nil
	}
	limit, ok := new(big.Rat).SetString(pol.Limits.MaxStoragePerWorkload.AsDec().String())
	if !ok {
		return nil
	}
	c := countStorage(w)
	if c.total.Cmp(limit) <= 0 || c.largest == nil {
		return nil
	}
	if old != nil && c.total.Cmp(countStorage(old).total) <= 0 {
		return nil
	}
	p, v := c.largest, c.largestSize
	if opts != nil && opts.Storage != nil {
		p, v = annotationsPath.Key(annotations.Storage), opts.Storage.String()
	}
	return field.Invalid(p, v, fmt.Sprintf("the workload's %s of ephemeral volumes (%s) exceed limits.maxStoragePerWorkload (%s) of KaiwoPolicy %q",
		bytesString(c.total), strings.Join(c.parts, "; "), pol.Limits.MaxStoragePerWorkload.String(), pol.Name))
}

// checkLockedStorage: under a locked storage, every generic ephemeral volume of the template asks for the
// policy's size and class (Kaiwo's workload volume does), so that no other class or size is claimed.
func checkLockedStorage(t template, pol *policy.Policy) field.ErrorList {
	if !pol.IsLocked(policy.FieldStorage) {
		return nil
	}
	var errs field.ErrorList
	for i, v := range t.spec.Spec.Volumes {
		if v.Ephemeral == nil || v.Ephemeral.VolumeClaimTemplate == nil {
			continue
		}
		cp := t.path.Child("spec", "volumes").Index(i).Child("ephemeral", "volumeClaimTemplate", "spec")
		claim := &v.Ephemeral.VolumeClaimTemplate.Spec
		if class := ptr.Deref(claim.StorageClassName, ""); class != pol.Defaults.StorageClass {
			errs = append(errs, field.Invalid(cp.Child("storageClassName"), class,
				fmt.Sprintf("is locked by KaiwoPolicy %q: defaults.storage.storageClassName is %q and cannot be changed", pol.Name, pol.Defaults.StorageClass)))
		}
		size, ok := claim.Resources.Requests[corev1.ResourceStorage]
		if want := pol.Defaults.StorageSize; !ok || want == nil || size.Cmp(*want) != 0 {
			errs = append(errs, field.Invalid(cp.Child("resources", "requests").Key(string(corev1.ResourceStorage)), size.String(),
				fmt.Sprintf("is locked by KaiwoPolicy %q: defaults.storage.size is %q and cannot be changed", pol.Name, quantityString(pol.Defaults.StorageSize))))
		}
	}
	return errs
}
