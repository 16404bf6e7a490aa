package server

import "github.com/prometheus/client_golang/prometheus"

// ValidationMetrics are the workload validator's metrics, apart from the Mutator's so that each
// webhook's requests, latency and denials read on their own.
type ValidationMetrics struct {
	Requests *prometheus.CounterVec
	Latency  *prometheus.HistogramVec
	Denials  *prometheus.CounterVec
}

func newValidationMetrics(reg prometheus.Registerer) *ValidationMetrics {
	m := &ValidationMetrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kaiwo_webhook_validation_requests_total",
			Help: "Validating admission requests received, by kind (resource/subresource for a subresource) and operation.",
		}, []string{"kind", "operation"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kaiwo_webhook_validation_duration_seconds",
			Help:    "Time to answer a validating admission request, by kind and result (allowed, skipped, denied, error).",
			Buckets: latencyBuckets,
		}, []string{"kind", "result"}),
		Denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kaiwo_webhook_validation_denials_total",
			Help: "Objects refused by the validating webhook, by kind and reason.",
		}, []string{"kind", "reason"}),
	}
	reg.MustRegister(m.Requests, m.Latency, m.Denials)
	return m
}
