package server

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the webhook's own Prometheus metrics; controller-runtime adds its webhook metrics beside them.
type Metrics struct {
	// Validation are the workload validator's.
	Validation *ValidationMetrics

	Requests  *prometheus.CounterVec
	Latency   *prometheus.HistogramVec
	Mutations *prometheus.CounterVec
	Denials   *prometheus.CounterVec
	Throttled *prometheus.CounterVec
	// KindServed is 1 for a kind the API server serves, 0 for one it does not (its CRD not installed).
	KindServed *prometheus.GaugeVec
}

// latencyBuckets are the admission latency histograms' buckets, in seconds: 0.1 ms to 0.5 s, finest below
// a few milliseconds, where the webhook answers.
var latencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.1, 0.5}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Validation: newValidationMetrics(reg),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kaiwo_webhook_requests_total",
			Help: "Admission requests received, by kind and operation.",
		}, []string{"kind", "operation"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kaiwo_webhook_admission_duration_seconds",
			Help:    "Time to answer an admission request, by kind and result (mutated, unchanged, skipped, denied, error).",
			Buckets: latencyBuckets,
		}, []string{"kind", "result"}),
		Mutations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kaiwo_webhook_mutations_total",
			Help: "Mutated objects, by kind and feature applied.",
		}, []string{"kind", "feature"}),
		Denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kaiwo_webhook_denials_total",
			Help: "Denied objects, by kind and reason.",
		}, []string{"kind", "reason"}),
		Throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kaiwo_webhook_throttled_total",
			Help: "Admission requests answered 429 because no mutation slot (--max-inflight) freed in time, by kind.",
		}, []string{"kind"}),
		KindServed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kaiwo_webhook_kind_served",
			Help: "The kinds the webhook knows, 1 when the API server serves the kind and 0 when it does not (its CRD is not installed), by group, version, kind and handled (true: mutated and validated; false: a GPU-capable kind only checked).",
		}, []string{"group", "version", "kind", "handled"}),
	}
	reg.MustRegister(m.Requests, m.Latency, m.Mutations, m.Denials, m.Throttled, m.KindServed)
	return m
}
