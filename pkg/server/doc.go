// Package server is the thin admission layer: it decodes AdmissionReview requests for the kinds of the
// registry it is given, calls the pure core for the mutating and the validating webhook, and answers with
// a patch, warnings or a denial. It also holds the bound on requests in flight, the metrics, the manager
// (TLS, leader election, the drain on SIGTERM), the check that notices when Kueue's API is served and the
// one that reports which kinds the API server serves.
package server
