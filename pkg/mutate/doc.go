// Package mutate is the pure core that Kaiwo-ifies a Job, RayJob, RayService or Deployment under an effective policy.
package mutate
