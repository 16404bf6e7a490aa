package mutate

// TEMPORARY: the enforcement API that branch i10-enforce implements; removed when it is merged.

import (
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

type Review struct {
	Operation string
	Object    client.Object
	Raw       []byte
	Old       client.Object
	OldRaw    []byte
	Policy    *policy.Policy
	User      string
}

func Validate(r Review) (warnings []string, err error) { return nil, nil }

func ValidateScale(obj client.Object, replicas int32, pol *policy.Policy) error { return nil }

func ValidateUnhandled(raw []byte, pol *policy.Policy) error { return nil }
