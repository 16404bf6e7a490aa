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
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.1, 0.5},
		}, []string{"kind", "result"}),
		Denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kaiwo_webhook_validation_denials_total",
			Help: "Objects refused by the validating webhook, by kind and reason.",
		}, []string{"kind", "reason"}),
	}
	reg.MustRegister(m.Requests, m.Latency, m.Denials)
	return m
}
