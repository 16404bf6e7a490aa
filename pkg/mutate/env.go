package mutate

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
)

// The env vars the webhook sets itself in every managed container; kaiwo.silogen.ai/env may not set them.
const (
	EnvNumGPUs           = annotations.EnvNumGPUs
	EnvNumReplicas       = annotations.EnvNumReplicas
	EnvNumGPUsPerReplica = annotations.EnvNumGPUsPerReplica
)

// envVars renders the entries for a container; mounts are returned alongside.
func envVars(e *annotations.EnvFile) []corev1.EnvVar {
	var out []corev1.EnvVar
	for _, v := range e.EnvVars {
		switch {
		case v.FromSecret != nil:
			out = append(out, corev1.EnvVar{Name: v.FromSecret.Name, ValueFrom: &corev1.EnvVarSource{
				SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: v.FromSecret.Secret}, Key: v.FromSecret.Key},
			}})
		case v.MountSecret != nil:
			out = append(out, corev1.EnvVar{Name: v.MountSecret.Name, Value: v.MountSecret.Path})
		default:
			out = append(out, corev1.EnvVar{Name: v.Name, Value: *v.Value})
		}
	}
	return out
}

// secrets lists the Secret names the file refers to, with the path of each reference.
func envSecrets(e *annotations.EnvFile, p *field.Path) map[string]*field.Path {
	out := map[string]*field.Path{}
	for i, v := range e.EnvVars {
		switch {
		case v.FromSecret != nil:
			out[v.FromSecret.Secret] = p.Child("envVars").Index(i).Child("fromSecret", "secret")
		case v.MountSecret != nil:
			out[v.MountSecret.Secret] = p.Child("envVars").Index(i).Child("mountSecret", "secret")
		}
	}
	return out
}
