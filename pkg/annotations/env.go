package annotations

import (
	"fmt"
	"path"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

// Env vars the webhook sets itself in every managed container.
const (
	EnvNumGPUs           = "NUM_GPUS"
	EnvNumReplicas       = "NUM_REPLICAS"
	EnvNumGPUsPerReplica = "NUM_GPUS_PER_REPLICA"
)

var reservedEnv = []string{EnvNumGPUs, EnvNumReplicas, EnvNumGPUsPerReplica}

// EnvFile is the Kaiwo CLI's env file, carried unchanged in the kaiwo.silogen.ai/env annotation.
type EnvFile struct {
	EnvVars []EnvEntry `json:"envVars"`
}

// EnvEntry is one item: a plain value, a value from a Secret, or a Secret key mounted as a file.
type EnvEntry struct {
	Name        string       `json:"name,omitempty"`
	Value       *string      `json:"value,omitempty"`
	FromSecret  *SecretEnv   `json:"fromSecret,omitempty"`
	MountSecret *SecretMount `json:"mountSecret,omitempty"`
}

// SecretEnv sets env var Name from key Key of Secret Secret.
type SecretEnv struct {
	Name   string `json:"name"`
	Secret string `json:"secret"`
	Key    string `json:"key"`
}

// SecretMount mounts key Key of Secret Secret as a file at Path and sets env var Name to Path.
type SecretMount struct {
	Name   string `json:"name"`
	Secret string `json:"secret"`
	Key    string `json:"key"`
	Path   string `json:"path"`
}

// ParseEnv decodes and checks the env annotation at p.
func ParseEnv(p *field.Path, v string) (*EnvFile, field.ErrorList) {
	env := &EnvFile{}
	if err := yaml.UnmarshalStrict([]byte(v), env); err != nil {
		return nil, field.ErrorList{field.Invalid(p, Shorten(v), "must be the Kaiwo env-file YAML (envVars: [{name, value} | {fromSecret: {name, secret, key}} | {mountSecret: {name, secret, key, path}}]): "+err.Error())}
	}
	if n := len(env.EnvVars); n > MaxEnvEntries {
		return nil, field.ErrorList{field.TooMany(p.Child("envVars"), n, MaxEnvEntries)}
	}
	var errs field.ErrorList
	names := map[string]bool{}
	paths := map[string]bool{}
	for i, e := range env.EnvVars {
		ip := p.Child("envVars").Index(i)
		forms := 0
		for _, set := range []bool{e.Value != nil || e.Name != "", e.FromSecret != nil, e.MountSecret != nil} {
			if set {
				forms++
			}
		}
		if forms != 1 {
			errs = append(errs, field.Invalid(ip, forms, "must have exactly one of {name, value}, fromSecret, mountSecret"))
			continue
		}
		var name string
		var np *field.Path
		switch {
		case e.FromSecret != nil:
			name, np = e.FromSecret.Name, ip.Child("fromSecret", "name")
			errs = append(errs, checkSecretKey(ip.Child("fromSecret"), e.FromSecret.Secret, e.FromSecret.Key)...)
		case e.MountSecret != nil:
			name, np = e.MountSecret.Name, ip.Child("mountSecret", "name")
			mp := ip.Child("mountSecret")
			errs = append(errs, checkSecretKey(mp, e.MountSecret.Secret, e.MountSecret.Key)...)
			if msg := checkMountPath(e.MountSecret.Path); msg != "" {
				errs = append(errs, field.Invalid(mp.Child("path"), e.MountSecret.Path, msg))
			} else if paths[e.MountSecret.Path] {
				errs = append(errs, field.Duplicate(mp.Child("path"), e.MountSecret.Path))
			}
			paths[e.MountSecret.Path] = true
		default:
			name, np = e.Name, ip.Child("name")
			if e.Value == nil {
				errs = append(errs, field.Required(ip.Child("value"), "a plain env var needs a value (use \"\" for empty)"))
			}
		}
		switch {
		case name == "":
			errs = append(errs, field.Required(np, "an env var name"))
		case len(validation.IsEnvVarName(name)) > 0:
			errs = append(errs, field.Invalid(np, name, "must be an env var name: "+strings.Join(validation.IsEnvVarName(name), "; ")))
		case isReserved(name):
			errs = append(errs, field.Invalid(np, name, "is set by Kaiwo; reserved names: "+strings.Join(reservedEnv, ", ")))
		case names[name]:
			errs = append(errs, field.Duplicate(np, name))
		}
		names[name] = true
	}
	return env, errs
}

func isReserved(name string) bool {
	for _, r := range reservedEnv {
		if r == name {
			return true
		}
	}
	return false
}

func checkSecretKey(p *field.Path, secret, key string) field.ErrorList {
	var errs field.ErrorList
	if msg := checkName(secret); msg != "" {
		errs = append(errs, field.Invalid(p.Child("secret"), secret, "must be a Secret name in the workload's namespace: "+msg))
	}
	if msgs := validation.IsConfigMapKey(key); len(msgs) > 0 {
		errs = append(errs, field.Invalid(p.Child("key"), key, "must be a Secret key: "+strings.Join(msgs, "; ")))
	}
	return errs
}

// checkMountPath returns why p cannot be a mount path, or "".
func checkMountPath(p string) string {
	switch {
	case !path.IsAbs(p):
		return "must be an absolute path"
	case path.Clean(p) != p || strings.Contains(p, ".."):
		return "must be a clean absolute path without '..'"
	case strings.Contains(p, ":"):
		return "must not contain ':'"
	case p == "/":
		return "must not be /"
	}
	return ""
}

// Shorten keeps error messages readable when the bad value is a whole YAML file.
func Shorten(v string) string {
	const max = 200
	if len(v) <= max {
		return v
	}
	return v[:max] + fmt.Sprintf("... (%d bytes)", len(v))
}
