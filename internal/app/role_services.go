package app

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/bus"
	"github.com/yolda/yolda/internal/deadletter"
	"github.com/yolda/yolda/internal/insurance/checks"
	"github.com/yolda/yolda/internal/notify"
	"github.com/yolda/yolda/internal/relay"
	"github.com/yolda/yolda/internal/sweeper"
	"github.com/yolda/yolda/internal/telemetry"
)

// The services of each role of roleTable.

// apiServices: the audit trail's retention (the API writes the trail).
// The HTTP listener with the whole API on it is the process's, which runs
// it for every role that serves on it (needHTTP).
func (p *process) apiServices() ([]service, error) {
	return []service{{name: "audit-retention", run: p.audit.Run}}, nil
}

// relayServices: the relay; on PostgreSQL, the listener through which
// other processes' commits wake it; and the sweeper, which re-commits the
// jobs of requests stuck in a status (the queue is for speed, the database
// is the truth). The sweeper runs here because its output is outbox rows,
// which only a relay moves.
func (p *process) relayServices() ([]service, error) {
	rel := relay.New(p.store, p.broker, relay.Options{
		Batch: p.cfg.RelayBatch, Workers: p.cfg.RelayWorkers,
		RepublishWindow: p.cfg.RepublishWindow, Retention: p.cfg.OutboxRetention,
		ReceiptRetention: receiptRetention(p.cfg),
	}, p.log, p.registry)
	p.broker.OnReconnect(func() { rel.BrokerMayHaveLost("reconnect") })
	p.committed = append(p.committed, rel.Wake)
	ss := []service{{name: "relay", run: rel.Run}}
	if l, ok := p.store.operationalStore.(outboxListener); ok {
		ss = append(ss, service{name: "outbox-listener", run: func(ctx context.Context) error {
			return l.ListenOutbox(ctx, rel.Wake)
		}})
	}
	sw := sweeper.New(p.store, p.broker, p.requests.Jobs, sweeper.DefaultRules, sweeper.Options{Interval: p.cfg.SweepInterval}, p.log, p.registry)
	return append(ss, service{name: "sweeper", run: sw.Run}), nil
}

// outboxListener is a store that can wake the relay when another process
// commits outbox rows (PostgreSQL LISTEN/NOTIFY).
type outboxListener interface {
	ListenOutbox(ctx context.Context, wake func()) error
}

// notifyServices: the consumer of request events that writes customer
// notifications, a batch of events per transaction.
func (p *process) notifyServices() ([]service, error) {
	worker := notify.NewWorker(p.store, nil)
	lag, err := consumerLag(p.registry)
	if err != nil {
		return nil, err
	}
	return []service{p.batchConsumer("notify-consumer", notifyConsumer(p.cfg, p.deadLetters), notifyHandler(worker, lag))}, nil
}

// insuranceServices: the pending-check gauges, the publisher of the
// insurers' health to the board (GET /v1/insurers of every api process
// reads it) and one consumer per configured insurer (each with its own
// concurrency and retry rules).
// Calls stay one per message, behind the insurer's bulkhead; the outcomes
// that finish together share a transaction (intake's group commit behind
// RecordInsurance), each with its insurance.call event; a deferred check's
// call event is committed on its own.
func (p *process) insuranceServices() ([]service, error) {
	gauges, err := checks.NewPendingGauges(p.store, p.insurers.clients, p.registry, nil, p.log)
	if err != nil {
		return nil, fmt.Errorf("insurance: %w", err)
	}
	ss := []service{{name: "insurer-gauges", run: func(ctx context.Context) error {
		return gauges.Run(ctx, 15*time.Second)
	}}, p.insurerHealthPublisher()}
	handler := insuranceHandler(checks.NewWorker(p.insurers.clients, p.requests, p.store, nil, p.log))
	for _, c := range p.insurers.clients.All() {
		cc := insuranceConsumer(c.Config())
		cc.DeadLetter = deadLetterHook(p.deadLetters)
		ss = append(ss, p.consumer("insurance-consumer-"+c.Code(), cc, handler))
	}
	return ss, nil
}

// consumer is a service running a durable consumer whose handlers in
// flight at shutdown get the process's drain budget: every role's consumers
// go through here (or batchConsumer), so none can outlast
// YOLDA_SHUTDOWN_TIMEOUT.
func (p *process) consumer(name string, cc bus.ConsumerConfig, h bus.Handler) service {
	cc.DrainTimeout = drainBudget(p.cfg.ShutdownTimeout)
	return service{name: name, run: func(ctx context.Context) error { return bus.Consume(ctx, p.broker, cc, h) }}
}

// batchConsumer is consumer for a batch handler.
func (p *process) batchConsumer(name string, cc bus.ConsumerConfig, h bus.BatchHandler) service {
	cc.DrainTimeout = drainBudget(p.cfg.ShutdownTimeout)
	return service{name: name, run: func(ctx context.Context) error { return bus.ConsumeBatch(ctx, p.broker, cc, h) }}
}

// consumerLag returns a function that records, for a handled message, the
// time from the commit of the change it announces to the end of its
// handling: the end-to-end latency of the backbone.
func consumerLag(reg prometheus.Registerer) (func(consumer string, payload []byte), error) {
	r := telemetry.NewRegistrar(reg)
	h := telemetry.Reuse(r, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "yolda_consumer_lag_seconds",
		Help:    "Time from a change's commit to its first successful handling by a consumer.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"consumer"}))
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("consumer lag metric: %w", err)
	}
	return func(consumer string, payload []byte) {
		var env struct {
			OccurredAt time.Time `json:"occurred_at"`
		}
		if json.Unmarshal(payload, &env) == nil && !env.OccurredAt.IsZero() {
			h.WithLabelValues(consumer).Observe(time.Since(env.OccurredAt).Seconds())
		}
	}, nil
}

// deadLetterHook stores what a consumer gave up on.
func deadLetterHook(s *deadletter.Service) func(ctx context.Context, d bus.Delivery, err error) error {
	return func(ctx context.Context, d bus.Delivery, cause error) error {
		return s.Record(ctx, d.Consumer, d.Stream, d.Subject, d.ID, d.Data, cause, int(d.NumDelivered))
	}
}
