// Package server is the thin admission layer: it decodes AdmissionReview requests, calls the pure core, and answers with a patch or a denial.
package server
