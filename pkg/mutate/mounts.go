package mutate

import (
	"path"

	corev1 "k8s.io/api/core/v1"
)

// An object may already mount what Kaiwo would mount, under its own volume name: the Kaiwo CLI's own
// rendered Jobs and RayJobs do, and so do Helm charts. Such a mount agrees with Kaiwo's and is left
// alone; a mount of anything else at Kaiwo's path is still a conflict (addMount).

// agreeingMount reports whether container c of pod ps already mounts, at want.MountPath, the same
// content as Kaiwo's volume v would: the same ConfigMap as a whole, or the same key of the same
// Secret as a file, whether selected by subPath or by the volume's items.
func agreeingMount(ps *corev1.PodSpec, c *corev1.Container, want corev1.VolumeMount, v corev1.Volume) bool {
	for _, have := range c.VolumeMounts {
		hv := podVolume(ps, have.Name)
		if hv == nil {
			continue
		}
		switch {
		case v.ConfigMap != nil:
			if hv.ConfigMap != nil && hv.ConfigMap.Name == v.ConfigMap.Name && len(hv.ConfigMap.Items) == 0 &&
				have.MountPath == want.MountPath && have.SubPath == "" && have.SubPathExpr == "" {
				return true
			}
		case v.Secret != nil:
			if hv.Secret != nil && hv.Secret.SecretName == v.Secret.SecretName && have.SubPathExpr == "" &&
				secretFileAt(hv.Secret, have, want.SubPath) == want.MountPath {
				return true
			}
		}
	}
	return false
}

// secretFileAt is where mount m of Secret volume s puts the Secret's key, or "" when it does not.
func secretFileAt(s *corev1.SecretVolumeSource, m corev1.VolumeMount, key string) string {
	rel := key
	if len(s.Items) > 0 {
		rel = ""
		for _, it := range s.Items {
			if it.Key == key {
				rel = path.Clean(it.Path)
			}
		}
		if rel == "" {
			return ""
		}
	}
	switch m.SubPath {
	case "":
		return path.Join(m.MountPath, rel)
	case rel:
		return path.Clean(m.MountPath)
	}
	return ""
}

// needsVolume reports whether some container of ps lacks an agreeing mount for one of Kaiwo's mounts
// of volume v, so that v must be added to the pod.
func needsVolume(ps *corev1.PodSpec, v corev1.Volume, mounts []corev1.VolumeMount) bool {
	for i := range ps.Containers {
		for _, m := range mounts {
			if m.Name == v.Name && !agreeingMount(ps, &ps.Containers[i], m, v) {
				return true
			}
		}
	}
	return false
}

func podVolume(ps *corev1.PodSpec, name string) *corev1.Volume {
	for i := range ps.Volumes {
		if ps.Volumes[i].Name == name {
			return &ps.Volumes[i]
		}
	}
	return nil
}

func volumeNamed(vs []corev1.Volume, name string) corev1.Volume {
	for _, v := range vs {
		if v.Name == name {
			return v
		}
	}
	return corev1.Volume{}
}
