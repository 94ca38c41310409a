package intake

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/telemetry"
)

// Metrics are the group commit's collectors. They never belong to the
// package: each registry gets its own (two services on one registry share
// them).
type Metrics struct {
	batchSize     prometheus.Histogram
	commitSeconds prometheus.Histogram
	commitErrors  prometheus.Counter
}

// NewMetrics declares the intake metrics on reg (nil: count without
// exporting). Pass its Observe as BatchOptions.Observe.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	r := telemetry.NewRegistrar(reg)
	m := &Metrics{
		batchSize: telemetry.Reuse(r, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "yolda_intake_batch_size", Help: "Requests committed per intake transaction.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		})),
		commitSeconds: telemetry.Reuse(r, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "yolda_intake_commit_seconds", Help: "Time of one intake transaction.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 12),
		})),
		commitErrors: telemetry.Reuse(r, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "yolda_intake_commit_errors_total", Help: "Intake transactions that failed.",
		})),
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	return m, nil
}

// Observe records one group commit: its size, its time, and whether it
// failed.
func (m *Metrics) Observe(size int, took time.Duration, err error) {
	m.batchSize.Observe(float64(size))
	m.commitSeconds.Observe(took.Seconds())
	if err != nil {
		m.commitErrors.Inc()
	}
}
