// Package kueuelate starts the server on a control plane without Kueue's API, then installs Kueue's
// CRDs and shows the server picks them up without a restart (envtest; skipped under -short).
package kueuelate
