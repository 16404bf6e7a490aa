package mutate

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
)

// Limits on what one request may make the webhook do. Each is far above what a real workload needs
// (the realworld test data and the examples use a few containers, a few templates and tens of env
// entries), so that a request past one is a mistake or an attack, denied with the field, the value and
// the limit before it costs memory: the webhook answers every request within a bounded time and memory.
const (
	// MaxObjectBytes bounds the object's JSON: etcd stores no value over 1.5 MiB (its default
	// --max-request-bytes), so a larger object could not be created even if it were admitted; the API
	// server accepts request bodies up to 3 MiB, which would cost a decode for nothing.
	MaxObjectBytes = 3 << 19
	// MaxAnnotationBytes bounds one Kaiwo annotation value (annotations.MaxValueBytes).
	MaxAnnotationBytes = annotations.MaxValueBytes
	// MaxEnvEntries bounds the entries of the kaiwo.silogen.ai/env annotation.
	MaxEnvEntries = annotations.MaxEnvEntries
	// MaxInjectedEnv bounds the env entries the annotation adds over all containers: it is copied into
	// every container of every managed template, so entries x containers.
	MaxInjectedEnv = 10_000
	// MaxInjectedEnvBytes bounds the bytes of env names and values the annotation adds over all containers.
	MaxInjectedEnvBytes = 2 << 20
	// MaxContainers bounds the containers (app and init) over all pod templates of a managed object.
	MaxContainers = 10_000
	// MaxPatchOperations bounds the JSON patch of one response, as the API server bounds the JSON patch
	// of a PATCH request (10,000 operations).
	MaxPatchOperations = 10_000
	// MaxPatchBytes bounds the encoded JSON patch of one response: the API server accepts no request
	// body over 3 MiB, so a larger patch makes an object it could not have been sent.
	MaxPatchBytes = 3 << 20
	// MaxReportedErrors bounds the errors one denial lists; the rest are counted.
	MaxReportedErrors = annotations.MaxReportedErrors
)

// checkLimits denies an object whose templates, with the env annotation copied into each container,
// are past the limits, before anything is built for them.
func checkLimits(ts []template, opts *Options) field.ErrorList {
	containers, all := 0, 0
	for _, t := range ts {
		containers += len(t.spec.Spec.Containers)
		all += len(t.spec.Spec.Containers) + len(t.spec.Spec.InitContainers)
	}
	if all > MaxContainers {
		return field.ErrorList{field.Invalid(field.NewPath("spec"), fmt.Sprintf("%d containers", all),
			fmt.Sprintf("must hold at most %d containers (app and init) over all pod templates", MaxContainers))}
	}
	if opts.Env == nil {
		return nil
	}
	entries, bytes := len(opts.Env.EnvVars), 0
	for _, v := range opts.Env.EnvVars {
		switch {
		case v.FromSecret != nil:
			bytes += len(v.FromSecret.Name) + len(v.FromSecret.Secret) + len(v.FromSecret.Key)
		case v.MountSecret != nil:
			bytes += len(v.MountSecret.Name) + len(v.MountSecret.Path)
		case v.Value != nil:
			bytes += len(v.Name) + len(*v.Value)
		}
	}
	p := annotationsPath.Key(annotations.Env)
	switch {
	case entries*containers > MaxInjectedEnv:
		return field.ErrorList{field.Invalid(p, fmt.Sprintf("%d entries x %d containers", entries, containers),
			fmt.Sprintf("must add at most %d env entries over all containers: the annotation is copied into every container", MaxInjectedEnv))}
	case bytes*containers > MaxInjectedEnvBytes:
		return field.ErrorList{field.Invalid(p, fmt.Sprintf("%d bytes of names and values x %d containers", bytes, containers),
			fmt.Sprintf("must add at most %d bytes of env names and values over all containers: the annotation is copied into every container", MaxInjectedEnvBytes))}
	}
	return nil
}

// checkSize denies raw past MaxObjectBytes, before it is decoded.
func checkSize(raw []byte) *Denial {
	if len(raw) <= MaxObjectBytes {
		return nil
	}
	return &Denial{ReasonLimit, field.ErrorList{field.Invalid(field.NewPath("object"), fmt.Sprintf("%d bytes of JSON", len(raw)),
		fmt.Sprintf("must be at most %d bytes of JSON: etcd stores no larger object (its default --max-request-bytes)", MaxObjectBytes))}}
}

// checkPatch denies a patch past the limits: ops is the patch, encoded its JSON, nil if not yet encoded.
func checkPatch(ops int, encoded []byte) *Denial {
	switch {
	case ops > MaxPatchOperations:
		return &Denial{ReasonLimit, field.ErrorList{field.Invalid(field.NewPath("spec"), fmt.Sprintf("%d patch operations", ops),
			fmt.Sprintf("must need a JSON patch of at most %d operations: fewer containers, templates or env entries", MaxPatchOperations))}}
	case len(encoded) > MaxPatchBytes:
		return &Denial{ReasonLimit, field.ErrorList{field.Invalid(field.NewPath("spec"), fmt.Sprintf("%d bytes of JSON patch", len(encoded)),
			fmt.Sprintf("must need a JSON patch of at most %d bytes: fewer containers, templates or env entries", MaxPatchBytes))}}
	}
	return nil
}
