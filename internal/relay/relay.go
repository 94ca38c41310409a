// Package relay moves committed outbox rows to the broker (the "relay"
// role). The database is the truth and the broker a fast copy: a row is
// marked sent only after the broker acknowledged it, every row carries its
// id as Nats-Msg-Id so a second publication is dropped, and whenever the
// broker may have lost the unflushed tail of its log (at start, after a
// reconnect, when a stream's last sequence went backwards) the rows sent
// within the republish window are published again.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/bus"
	"github.com/yolda/yolda/internal/outbox"
)

// Store is the relay's view of the outbox.
type Store interface {
	// RelayOutbox hands up to limit unsent rows, in commit order, to
	// publish and marks sent those publish confirms.
	RelayOutbox(ctx context.Context, limit int, publish func([]outbox.Message) []bool) (int, error)
	OutboxSentSince(ctx context.Context, since time.Time, afterSeq int64, limit int) ([]outbox.Message, error)
	PruneOutbox(ctx context.Context, sentBefore time.Time, limit int) (int, error)
	OutboxBacklog(ctx context.Context) (int, time.Time, error)
	// PruneBookkeeping deletes consumer receipts and idempotency keys past
	// their retention.
	PruneBookkeeping(ctx context.Context, receiptsBefore, keysBefore time.Time, limit int) (int, error)
}

// Broker is what the relay needs of the bus.
type Broker interface {
	PublishBatch(ctx context.Context, msgs []bus.Message) error
	StreamLastSeq(ctx context.Context, stream string) (uint64, error)
}

// Options tune the relay. Zero values take the defaults.
type Options struct {
	// Batch is how many rows one publish round takes (500).
	Batch int
	// Poll is the fallback interval when no wake-up arrives (1s).
	Poll time.Duration
	// RepublishWindow is how far back rows are published again when the
	// broker may have lost its tail: its fsync interval plus a margin
	// (2m30s for JetStream's default 2m). Keep it within the streams'
	// duplicate window so that the broker drops the copies it still has.
	RepublishWindow time.Duration
	// Retention is how long sent rows are kept before pruning (1h); it
	// must exceed RepublishWindow.
	Retention time.Duration
	// Check is how often stream sequences and the backlog are read (5s).
	Check time.Duration
	// ReceiptRetention is how long consumers' receipts are kept (8 days).
	// It must exceed how long a message can come back: the EVENTS
	// stream's max age, which a new consumer replays.
	ReceiptRetention time.Duration
	// KeyRetention is how long an Idempotency-Key is remembered (24h).
	KeyRetention time.Duration
	// Streams whose last sequence is watched.
	Streams []string
}

func (o Options) withDefaults() Options {
	if o.Batch <= 0 {
		o.Batch = 500
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.RepublishWindow <= 0 {
		o.RepublishWindow = 150 * time.Second
	}
	if o.Retention <= o.RepublishWindow {
		o.Retention = max(time.Hour, 2*o.RepublishWindow)
	}
	if o.Check <= 0 {
		o.Check = 5 * time.Second
	}
	if o.ReceiptRetention <= 0 {
		o.ReceiptRetention = 8 * 24 * time.Hour
	}
	if o.KeyRetention <= 0 {
		o.KeyRetention = 24 * time.Hour
	}
	if o.Streams == nil {
		o.Streams = []string{bus.StreamJobs, bus.StreamEvents}
	}
	return o
}

// Relay is one relay worker. Several may run against PostgreSQL at once.
type Relay struct {
	store   Store
	broker  Broker
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics

	wake chan struct{}
	lost chan string

	mu      sync.Mutex
	lastSeq map[string]uint64
}

// New returns a relay. reg may be nil.
func New(store Store, broker Broker, opts Options, log *slog.Logger, reg prometheus.Registerer) *Relay {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Relay{
		store: store, broker: broker, opts: opts.withDefaults(), log: log, now: time.Now,
		metrics: newMetrics(reg),
		wake:    make(chan struct{}, 1),
		lost:    make(chan string, 1),
		lastSeq: map[string]uint64{},
	}
}

// Wake tells the relay that rows were committed. It never blocks: wake-ups
// that arrive while one is pending are merged.
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// BrokerMayHaveLost asks for the recent rows to be published again; the
// bus calls it after a reconnect.
func (r *Relay) BrokerMayHaveLost(why string) {
	select {
	case r.lost <- why:
	default:
	}
}

// Run relays until ctx ends. Rows committed but not yet relayed when it
// stops stay in the outbox for the next start.
func (r *Relay) Run(ctx context.Context) error {
	r.republish(ctx, "start")
	r.check(ctx)
	poll := time.NewTicker(r.opts.Poll)
	defer poll.Stop()
	check := time.NewTicker(r.opts.Check)
	defer check.Stop()
	prune := time.NewTicker(time.Minute)
	defer prune.Stop()
	var failedAt time.Time
	for {
		// After a failed round, wait for the poll tick rather than every
		// wake-up, so a dead broker is not hammered once per commit.
		if failedAt.IsZero() || r.now().Sub(failedAt) >= r.opts.Poll {
			if r.drain(ctx) {
				failedAt = time.Time{}
			} else {
				failedAt = r.now()
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		case <-poll.C:
		case why := <-r.lost:
			r.republish(ctx, why)
		case <-check.C:
			r.check(ctx)
		case <-prune.C:
			r.prune(ctx)
		}
	}
}

// drain relays until the outbox is empty or a round fails; it reports
// whether every round succeeded.
func (r *Relay) drain(ctx context.Context) bool {
	for ctx.Err() == nil {
		failed := false
		n, err := r.store.RelayOutbox(ctx, r.opts.Batch, func(msgs []outbox.Message) []bool {
			ok := r.publish(ctx, msgs)
			for i, m := range msgs {
				if ok[i] {
					r.metrics.lag.Observe(r.now().Sub(m.CreatedAt).Seconds())
				} else {
					failed = true
				}
			}
			return ok
		})
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("relay round failed", "err", err)
			}
			return false
		}
		r.metrics.relayed.Add(float64(n))
		if failed {
			return false
		}
		if n < r.opts.Batch {
			return true
		}
	}
	return true
}

// publish sends msgs and reports which ones the broker confirmed.
func (r *Relay) publish(ctx context.Context, msgs []outbox.Message) []bool {
	out := make([]bus.Message, len(msgs))
	for i, m := range msgs {
		out[i] = bus.Message{ID: m.ID, Subject: m.Subject, Payload: m.Payload}
	}
	ok := make([]bool, len(msgs))
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := r.now()
	err := r.broker.PublishBatch(pctx, out)
	r.metrics.publish.Observe(r.now().Sub(start).Seconds())
	var batch *bus.BatchError
	switch {
	case err == nil:
		for i := range ok {
			ok[i] = true
		}
	case errors.As(err, &batch) && len(batch.Errs) == len(msgs):
		for i, e := range batch.Errs {
			ok[i] = e == nil
		}
		r.log.Warn("broker refused part of a batch", "err", err)
	default:
		if ctx.Err() == nil {
			r.log.Warn("publish failed", "rows", len(msgs), "err", err)
		}
	}
	return ok
}

// republish publishes again every row sent within the window. Rows the
// broker still has are dropped by its deduplication.
func (r *Relay) republish(ctx context.Context, why string) {
	since := r.now().Add(-r.opts.RepublishWindow)
	var after int64
	total := 0
	for ctx.Err() == nil {
		msgs, err := r.store.OutboxSentSince(ctx, since, after, r.opts.Batch)
		if err != nil {
			r.log.Warn("republish: read outbox", "err", err)
			r.BrokerMayHaveLost(why) // try again on the next turn
			return
		}
		if len(msgs) == 0 {
			break
		}
		ok := r.publish(ctx, msgs)
		for _, sent := range ok {
			if !sent {
				r.BrokerMayHaveLost(why)
				return
			}
		}
		total += len(msgs)
		after = msgs[len(msgs)-1].Seq
	}
	r.metrics.republished.WithLabelValues(why).Add(float64(total))
	if total > 0 {
		r.log.Info("republished recent outbox rows", "why", why, "rows", total, "window", r.opts.RepublishWindow.String())
	}
}

// check watches the streams' last sequences (a sequence that went
// backwards means the broker lost messages) and refreshes backlog gauges.
func (r *Relay) check(ctx context.Context) {
	for _, stream := range r.opts.Streams {
		seq, err := r.broker.StreamLastSeq(ctx, stream)
		if err != nil {
			continue
		}
		r.mu.Lock()
		prev, seen := r.lastSeq[stream]
		r.lastSeq[stream] = seq
		r.mu.Unlock()
		if seen && seq < prev {
			r.log.Warn("stream sequence went backwards", "stream", stream, "was", prev, "now", seq)
			r.republish(ctx, "stream "+stream+" went backwards")
		}
	}
	n, oldest, err := r.store.OutboxBacklog(ctx)
	if err != nil {
		return
	}
	r.metrics.backlog.Set(float64(n))
	if n == 0 {
		r.metrics.oldest.Set(0)
	} else {
		r.metrics.oldest.Set(r.now().Sub(oldest).Seconds())
	}
}

func (r *Relay) prune(ctx context.Context) {
	before := r.now().Add(-r.opts.Retention)
	for ctx.Err() == nil {
		n, err := r.store.PruneOutbox(ctx, before, 5000)
		if err != nil {
			r.log.Warn("prune outbox", "err", err)
			return
		}
		r.metrics.pruned.Add(float64(n))
		if n < 5000 {
			break
		}
	}
	now := r.now()
	for ctx.Err() == nil {
		n, err := r.store.PruneBookkeeping(ctx, now.Add(-r.opts.ReceiptRetention), now.Add(-r.opts.KeyRetention), 5000)
		if err != nil {
			r.log.Warn("prune receipts and idempotency keys", "err", err)
			return
		}
		if n < 5000 {
			return
		}
	}
}

type metrics struct {
	relayed     prometheus.Counter
	republished *prometheus.CounterVec
	pruned      prometheus.Counter
	publish     prometheus.Histogram
	lag         prometheus.Histogram
	backlog     prometheus.Gauge
	oldest      prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		relayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "yolda_relay_published_total", Help: "Outbox rows published and marked sent.",
		}),
		republished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "yolda_relay_republished_total", Help: "Outbox rows published again because the broker may have lost them, by reason.",
		}, []string{"reason"}),
		pruned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "yolda_outbox_pruned_total", Help: "Sent outbox rows deleted after their retention.",
		}),
		publish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "yolda_relay_publish_seconds", Help: "Time to publish one batch and get every acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "yolda_relay_lag_seconds", Help: "Time from a row's commit to its acknowledgement by the broker.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		backlog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "yolda_outbox_backlog", Help: "Outbox rows committed and not yet published.",
		}),
		oldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "yolda_outbox_oldest_unsent_seconds", Help: "Age of the oldest unpublished outbox row.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.relayed, m.republished, m.pruned, m.publish, m.lag, m.backlog, m.oldest)
	}
	return m
}

// String describes the relay's settings for the start-up log.
func (o Options) String() string {
	o = o.withDefaults()
	return fmt.Sprintf("batch=%d poll=%s republish_window=%s retention=%s", o.Batch, o.Poll, o.RepublishWindow, o.Retention)
}
