// Package e2e proves the webhook next to the real Kueue controller manager, the
// real KubeRay CRDs and real cert-manager controllers on a local control plane,
// each component a separate process; run it with `make test-e2e`.
package e2e
