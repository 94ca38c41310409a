package resilient

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/insurance"
	"github.com/yolda/yolda/internal/telemetry"
)

// Outcomes of a call to an insurer, as counted in yolda_insurer_calls_total.
const (
	outcomeCovered    = insurance.OutcomeCovered
	outcomeNotCovered = insurance.OutcomeNotCovered
	outcomeError      = insurance.OutcomeError
)

// metrics are the insurer collectors. Clients on one registry share them
// (one series per insurer); they never belong to the package.
type metrics struct {
	calls       *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	errors      *prometheus.CounterVec
	retries     *prometheus.CounterVec
	state       *prometheus.GaugeVec
	transitions *prometheus.CounterVec
	rejections  *prometheus.CounterVec
	inFlight    *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	r := telemetry.NewRegistrar(reg)
	insurer := []string{"insurer"}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return telemetry.Reuse(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "yolda", Subsystem: "insurer", Name: name, Help: help,
		}, append(insurer, labels...)))
	}
	gauge := func(name, help string) *prometheus.GaugeVec {
		return telemetry.Reuse(r, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "yolda", Subsystem: "insurer", Name: name, Help: help,
		}, insurer))
	}
	m := &metrics{
		calls: counter("calls_total",
			"Calls (attempts, retries included) sent to an insurer, by outcome: covered, not_covered, error.", "outcome"),
		duration: telemetry.Reuse(r, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "yolda", Subsystem: "insurer", Name: "call_duration_seconds",
			Help:    "Time of one call (attempt) to an insurer, whatever its outcome.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2, 3, 5, 10, 30},
		}, insurer)),
		errors: counter("errors_total",
			"Failed calls to an insurer by kind (timeout, refused, server, client, bad_payload, canceled, other), "+
				"and calls never sent (unavailable: breaker open; bulkhead_full).", "kind"),
		retries: counter("retries_total",
			"Retries sent to an insurer (within its retry budget)."),
		state: gauge("breaker_state",
			"An insurer's circuit breaker: 0 closed, 1 half-open, 2 open. Open turns half-open when the next call or health check looks."),
		transitions: counter("breaker_transitions_total",
			"Changes of an insurer's circuit breaker state, by the state entered.", "to"),
		rejections: counter("bulkhead_rejections_total",
			"Calls refused at once because the insurer's bulkhead was full."),
		inFlight: gauge("in_flight",
			"Verify calls in progress for an insurer (bulkhead slots held)."),
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	return m, nil
}
