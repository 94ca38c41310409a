package bus

import (
	"errors"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/telemetry"
)

// Outcomes of a delivery, as counted in yolda_bus_consumed_total.
const (
	outcomeAck    = "ack"    // handled and acknowledged
	outcomeRetry  = "retry"  // the handler asked for a delayed retry
	outcomeFailed = "failed" // the handler failed; redelivered after a back-off
	outcomeDead   = "dead"   // handed to the dead-letter hook and terminated
)

// metrics are the bus's collectors. They belong to a Bus, never to the
// package, so tests and several buses in one process do not collide.
type metrics struct {
	published       *prometheus.CounterVec
	publishDuration *prometheus.HistogramVec
	consumed        *prometheus.CounterVec
	redeliveries    *prometheus.CounterVec
	handlerDuration *prometheus.HistogramVec
	batchSize       *prometheus.HistogramVec
	pending         *prometheus.GaugeVec
	redelivered     *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	r := telemetry.NewRegistrar(reg)
	consumerLabels := []string{"stream", "consumer"}
	m := &metrics{
		published: telemetry.Reuse(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "yolda", Subsystem: "bus", Name: "published_total",
			Help: "Messages published, by stream and result (stored; duplicate: the stream already had it; full: refused at the stream's limit; error).",
		}, []string{"stream", "result"})),
		publishDuration: telemetry.Reuse(r, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "yolda", Subsystem: "bus", Name: "publish_duration_seconds",
			Help:    "Time to publish and have acknowledged one message (mode single) or one whole batch (mode batch).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"mode"})),
		consumed: telemetry.Reuse(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "yolda", Subsystem: "bus", Name: "consumed_total",
			Help: "Deliveries handled, by consumer and outcome (ack, retry, failed, dead).",
		}, append(consumerLabels, "outcome"))),
		redeliveries: telemetry.Reuse(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "yolda", Subsystem: "bus", Name: "redeliveries_total",
			Help: "Deliveries of a message this consumer had been given before.",
		}, consumerLabels)),
		handlerDuration: telemetry.Reuse(r, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "yolda", Subsystem: "bus", Name: "handler_duration_seconds",
			Help:    "Time a handler call took (one delivery, or one batch), whatever its outcome.",
			Buckets: prometheus.DefBuckets,
		}, consumerLabels)),
		batchSize: telemetry.Reuse(r, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "yolda", Subsystem: "bus", Name: "batch_size",
			Help:    "Deliveries handed to one handler call (1 for Consume; up to BatchMax for ConsumeBatch).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024},
		}, consumerLabels)),
		pending: telemetry.Reuse(r, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "yolda", Subsystem: "bus", Name: "consumer_pending",
			Help: "Messages of a consumer not yet done, by state: undelivered (NumPending) or unacked (NumAckPending, including those waiting for a delayed redelivery). Sampled.",
		}, append(consumerLabels, "state"))),
		redelivered: telemetry.Reuse(r, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "yolda", Subsystem: "bus", Name: "consumer_redelivered",
			Help: "Unacknowledged messages of a consumer that have been delivered more than once (NumRedelivered). Sampled.",
		}, consumerLabels)),
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) observePublish(subject string, ack *jetstream.PubAck, err error) {
	switch {
	case errors.Is(err, ErrStreamFull):
		m.published.WithLabelValues(StreamOf(subject), "full").Inc()
	case err != nil:
		m.published.WithLabelValues(StreamOf(subject), "error").Inc()
	case ack.Duplicate:
		m.published.WithLabelValues(ack.Stream, "duplicate").Inc()
	default:
		m.published.WithLabelValues(ack.Stream, "stored").Inc()
	}
}
