// Package mutate is the pure core: it Kaiwo-ifies a workload of a handled kind (a Job, RayJob, RayService
// or Deployment) under an effective policy and computes the JSON patch the API server gets
// (Registry.Admit, AdmitRequest), and it validates the final object, an UPDATE or a scale-up against the
// policy's limits and locks for the validating webhook (Validate, ValidateScale, Registry.ValidateUnhandled).
// No I/O, no clients, no clock.
//
// The handled kinds are a Registry value (Builtin) that the server, the offline command and the tests are
// given. A kind is one file: its workload adapter type, which the features are written against (templates,
// pods, check, plan, queue, and finisher for a TTL), and its registration type (an Adapter: KindInfo, New,
// adapt), listed once in Builtin.
package mutate
