// Package mutate is the pure core: it Kaiwo-ifies a Job, RayJob, RayService or Deployment under an
// effective policy and computes the JSON patch the API server gets (Admit), and it validates the final
// object, an UPDATE or a scale-up against the policy's limits and locks for the validating webhook
// (Validate, ValidateScale, ValidateUnhandled). No I/O, no clients, no clock.
package mutate
