package mutate

import "github.com/silogen/kaiwo-webhook/pkg/annotations"

// Options are the user's Kaiwo annotations, parsed beside their keys (annotations.ParseOptions).
type Options = annotations.Options

// Queueing modes of kaiwo.silogen.ai/queueing.
const (
	QueueingKueue = annotations.QueueingKueue
	QueueingNone  = annotations.QueueingNone
)
