// Package server is the thin admission layer: it decodes AdmissionReview requests for the kinds of the
// registry it is given, calls the pure core for the mutating and the validating webhook, and answers with
// a patch, warnings or a denial. It also holds the bound on requests in flight, the metrics, the manager
// (TLS, leader election, the drain on SIGTERM), which starts pkg/controller's discovery checks (Kueue's
// API, the kinds served).
package server
