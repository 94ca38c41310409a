// Package relay moves committed outbox rows to the broker (the "relay"
// role). The database is the truth and the broker a fast copy: a row leaves
// the outbox only once the broker acknowledged it, every row carries its id
// as Nats-Msg-Id so a second publication is dropped, and whenever the
// broker may have lost the unflushed tail of its log (at start, after a
// reconnect, when a stream's last sequence went backwards) the relay
// compares what the broker holds with what it confirmed within the
// republish window and publishes again only what is missing.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/bus"
	"github.com/yolda/yolda/internal/outbox"
)

// Store is the relay's view of the outbox.
type Store interface {
	// RelayOutbox claims up to limit unsent rows for lease, hands them, in
	// insert order, to publish with no transaction open, and records what
	// publish reports: confirmed rows leave the outbox for the republish
	// window, the others stay, held for their RetryAfter. It returns how
	// many rows were confirmed.
	RelayOutbox(ctx context.Context, limit int, lease time.Duration, publish func([]outbox.Message) []outbox.Publication) (int, error)
	// OutboxLastPublished is, of the messages confirmed on stream since
	// since, the one with the highest stream sequence (zero: none).
	OutboxLastPublished(ctx context.Context, stream string, since time.Time) (outbox.Published, error)
	// OutboxPublishedAfter lists messages confirmed on stream since since
	// whose stream sequence is above afterSeq, in stream-sequence order.
	OutboxPublishedAfter(ctx context.Context, stream string, since time.Time, afterSeq uint64, limit int) ([]outbox.Published, error)
	// PruneOutbox forgets the republish window's records older than
	// before.
	PruneOutbox(ctx context.Context, before time.Time, limit int) (int, error)
	OutboxBacklog(ctx context.Context) (int, time.Time, error)
	// PruneBookkeeping deletes consumer receipts and idempotency keys past
	// their retention.
	PruneBookkeeping(ctx context.Context, receiptsBefore, keysBefore time.Time, limit int) (int, error)
}

// Broker is what the relay needs of the bus.
type Broker interface {
	PublishBatchAcks(ctx context.Context, msgs []bus.Message) ([]bus.Ack, error)
	Stream(ctx context.Context, stream string) (bus.StreamState, error)
	MessageIDAt(ctx context.Context, stream string, seq uint64) (string, bool, error)
}

// Defaults of Options.
const (
	// DefaultRepublishWindow is JetStream's default sync interval (2m)
	// plus a margin; bus.DefaultDuplicateWindow covers it.
	DefaultRepublishWindow = 150 * time.Second
	// DefaultLease outlasts a publish (publishTimeout) with room to spare.
	DefaultLease = 30 * time.Second
	// DefaultFullBackoff is how long rows a stream refused at its limit
	// are held back before they are tried again.
	DefaultFullBackoff = 5 * time.Second
)

// publishTimeout bounds one publish round; it must stay under the lease,
// or another relay could take the rows while they are still in flight.
const publishTimeout = 10 * time.Second

// Options tune the relay. Zero values take the defaults.
type Options struct {
	// Batch is how many rows one publish round takes (2000).
	Batch int
	// Workers is how many rounds run at once while a backlog lasts (1).
	// Above 1, rounds overtake each other as several relays' do: a
	// request's messages reach the broker in seq order only per round
	// (docs/events.md, "Order and versions").
	Workers int
	// Poll is the fallback interval when no wake-up arrives (1s).
	Poll time.Duration
	// RepublishWindow is how far back the relay looks for messages the
	// broker may have lost with its unflushed tail: its fsync interval plus
	// a margin (DefaultRepublishWindow). Keep it within the streams'
	// duplicate window so that the broker drops the copies it still has.
	RepublishWindow time.Duration
	// Retention is how long the republish window's records are kept before
	// pruning (1h); it must exceed RepublishWindow.
	Retention time.Duration
	// Lease is how long a claimed row is held from other relays
	// (DefaultLease): a relay killed mid-round delays its rows by that
	// much. It must exceed the publish timeout (10s).
	Lease time.Duration
	// FullBackoff holds back rows a stream refused at its limit
	// (DefaultFullBackoff), so the rows behind them go out meanwhile.
	FullBackoff time.Duration
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
		o.Batch = 2000
	}
	if o.Workers <= 0 {
		o.Workers = 1
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.RepublishWindow <= 0 {
		o.RepublishWindow = DefaultRepublishWindow
	}
	if o.Retention <= o.RepublishWindow {
		o.Retention = max(time.Hour, 2*o.RepublishWindow)
	}
	if o.Lease <= publishTimeout {
		o.Lease = DefaultLease
	}
	if o.FullBackoff <= 0 {
		o.FullBackoff = DefaultFullBackoff
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

// Relay is one relay worker. Several may run at once, in any number of
// processes: each round claims rows no other relay holds.
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

// BrokerMayHaveLost asks the relay to check whether the broker still has
// what it confirmed recently, and to publish again what it lost; the bus
// calls it after a reconnect.
func (r *Relay) BrokerMayHaveLost(why string) {
	select {
	case r.lost <- why:
	default:
	}
}

// Run relays until ctx ends. Rows committed but not yet relayed when it
// stops stay in the outbox for the next start.
func (r *Relay) Run(ctx context.Context) error {
	r.recover(ctx, "start")
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
			r.recover(ctx, why)
		case <-check.C:
			r.check(ctx)
		case <-prune.C:
			r.prune(ctx)
		}
	}
}

// drain relays until the outbox has nothing left to claim or a round
// fails; it reports whether every round succeeded. Rows a stream refused
// at its limit do not fail the round: they are held back, and the rows
// behind them go out. While a backlog lasts (a round came back full),
// Workers rounds run at once, each on rows of its own claim: a round's
// two short transactions and its publish then overlap other rounds'
// instead of queueing behind them.
func (r *Relay) drain(ctx context.Context) bool {
	full, ok := r.round(ctx)
	if !ok || !full {
		return ok
	}
	var failed atomic.Bool
	var rounds sync.WaitGroup
	for range r.opts.Workers {
		rounds.Go(func() {
			for ctx.Err() == nil && !failed.Load() {
				full, ok := r.round(ctx)
				if !ok {
					failed.Store(true)
				}
				if !full {
					return
				}
			}
		})
	}
	rounds.Wait()
	return !failed.Load()
}

// round claims up to Batch rows, publishes them and records what the
// broker confirmed. It reports whether it claimed a whole batch (more may
// be waiting) and whether it succeeded.
func (r *Relay) round(ctx context.Context) (full, ok bool) {
	failed := false
	claimed := 0
	n, err := r.store.RelayOutbox(ctx, r.opts.Batch, r.opts.Lease, func(msgs []outbox.Message) []outbox.Publication {
		claimed = len(msgs)
		pubs, full, other := r.publish(ctx, msgs)
		for i, m := range msgs {
			if pubs[i].Confirmed() {
				r.metrics.lag.Observe(r.now().Sub(m.CreatedAt).Seconds())
			}
		}
		if full > 0 {
			r.metrics.held.Add(float64(full))
			r.log.Warn("a stream is at its limit: rows kept in the outbox and tried again", "rows", full,
				"retry_in", r.opts.FullBackoff.String())
		}
		failed = other > 0
		return pubs
	})
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("relay round failed", "err", err)
		}
		return false, false
	}
	r.metrics.relayed.Add(float64(n))
	return claimed == r.opts.Batch, !failed
}

// publish sends msgs and returns what the broker said of each, with how
// many it refused at a stream limit and how many failed otherwise.
func (r *Relay) publish(ctx context.Context, msgs []outbox.Message) (pubs []outbox.Publication, full, other int) {
	out := make([]bus.Message, len(msgs))
	for i, m := range msgs {
		out[i] = bus.Message{ID: m.ID, Subject: m.Subject, Payload: m.Payload}
	}
	pctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	start := r.now()
	acks, err := r.broker.PublishBatchAcks(pctx, out)
	r.metrics.publish.Observe(r.now().Sub(start).Seconds())
	pubs = make([]outbox.Publication, len(msgs))
	var batch *bus.BatchError
	if err != nil && !(errors.As(err, &batch) && len(batch.Errs) == len(msgs)) {
		if ctx.Err() == nil {
			r.log.Warn("publish failed", "rows", len(msgs), "err", err)
		}
		return pubs, 0, len(msgs)
	}
	for i := range msgs {
		switch {
		case i < len(acks) && acks[i].Seq > 0:
			pubs[i] = outbox.Publication{Stream: acks[i].Stream, StreamSeq: acks[i].Seq}
		case batch != nil && errors.Is(batch.Errs[i], bus.ErrStreamFull):
			pubs[i].RetryAfter = r.opts.FullBackoff
			full++
		default:
			other++
		}
	}
	if other > 0 && ctx.Err() == nil {
		r.log.Warn("broker refused part of a batch", "rows", other, "err", err)
	}
	return pubs, full, other
}

// recover publishes again what the broker confirmed within the republish
// window and no longer has. For each stream it takes the highest sequence
// the broker confirmed to this outbox (recorded with every round, by every
// relay), top, and the stream's last sequence, last, and looks at
// p = min(last, top):
//
//   - if the broker holds at p a message other than the one it confirmed
//     there, it lost its tail and has reused the sequence since: every
//     message of the window on the stream is published again (the broker
//     drops the copies it still has);
//   - otherwise what it confirmed up to p is there (a message gone from p
//     was consumed: JOBS is a work queue), and what it confirmed after p
//     is published again: nothing when last reached top.
//
// So a reconnect to a broker that lost nothing publishes nothing. A lost
// job is also found by the sweeper.
func (r *Relay) recover(ctx context.Context, why string) {
	since := r.now().Add(-r.opts.RepublishWindow)
	for _, stream := range r.opts.Streams {
		after, err := r.intactUpTo(ctx, stream, since)
		if err != nil {
			if ctx.Err() != nil {
				return // stopping: the next start checks again
			}
			r.log.Warn("republish: compare the broker with the outbox's record", "stream", stream, "err", err)
			r.BrokerMayHaveLost(why) // try again on the next turn
			return
		}
		if after < 0 {
			continue
		}
		if !r.republish(ctx, why, stream, since, uint64(after)) {
			if ctx.Err() == nil {
				r.BrokerMayHaveLost(why)
			}
			return
		}
	}
}

// intactUpTo returns the stream sequence up to which the broker still
// holds what it confirmed within the window since since, or -1 when it
// holds all of it (see recover).
func (r *Relay) intactUpTo(ctx context.Context, stream string, since time.Time) (int64, error) {
	top, err := r.store.OutboxLastPublished(ctx, stream, since)
	if err != nil || top.StreamSeq == 0 {
		return -1, err // nothing confirmed within the window
	}
	st, err := r.broker.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	p := min(st.LastSeq, top.StreamSeq)
	if p > 0 {
		id, found, err := r.broker.MessageIDAt(ctx, stream, p)
		if err != nil {
			return 0, err
		}
		recs, err := r.store.OutboxPublishedAfter(ctx, stream, since, p-1, r.opts.Batch)
		if err != nil {
			return 0, err
		}
		for _, rec := range recs {
			if found && rec.StreamSeq == p && rec.ID != id {
				r.log.Warn("the broker lost messages it had confirmed, and reused their sequences: publishing the window again",
					"stream", stream, "seq", p, "confirmed", rec.ID, "holds", id)
				return 0, nil
			}
		}
	}
	if p == top.StreamSeq {
		return -1, nil
	}
	r.log.Warn("the broker lost messages it had confirmed: publishing them again", "stream", stream,
		"stream_last_seq", st.LastSeq, "confirmed_up_to", top.StreamSeq)
	return int64(p), nil
}

// republish publishes again the messages of the window confirmed on
// stream after seq after; it reports whether every one was confirmed.
func (r *Relay) republish(ctx context.Context, why, stream string, since time.Time, after uint64) bool {
	total := 0
	defer func() {
		r.metrics.republished.WithLabelValues(why).Add(float64(total))
		if total > 0 {
			r.log.Info("republished outbox rows", "why", why, "stream", stream, "rows", total)
		}
	}()
	for ctx.Err() == nil {
		ps, err := r.store.OutboxPublishedAfter(ctx, stream, since, after, r.opts.Batch)
		if err != nil {
			r.log.Warn("republish: read outbox", "err", err)
			return false
		}
		if len(ps) == 0 {
			return true
		}
		msgs := make([]outbox.Message, len(ps))
		for i, p := range ps {
			msgs[i] = p.Message
		}
		if _, full, other := r.publish(ctx, msgs); full+other > 0 {
			return false
		}
		total += len(ps)
		after = ps[len(ps)-1].StreamSeq
	}
	return false
}

// check watches the streams (a last sequence that went backwards means
// the broker lost messages; how full each is against its limits) and
// refreshes the backlog gauges.
func (r *Relay) check(ctx context.Context) {
	for _, stream := range r.opts.Streams {
		st, err := r.broker.Stream(ctx, stream)
		if err != nil {
			continue
		}
		r.metrics.streamFill.WithLabelValues(stream).Set(st.Fill())
		r.metrics.streamMsgs.WithLabelValues(stream).Set(float64(st.Msgs))
		r.mu.Lock()
		prev, seen := r.lastSeq[stream]
		r.lastSeq[stream] = st.LastSeq
		r.mu.Unlock()
		if seen && st.LastSeq < prev {
			r.log.Warn("stream sequence went backwards", "stream", stream, "was", prev, "now", st.LastSeq)
			r.recover(ctx, "stream "+stream+" went backwards")
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
	held        prometheus.Counter
	streamFill  *prometheus.GaugeVec
	streamMsgs  *prometheus.GaugeVec
	pruned      prometheus.Counter
	publish     prometheus.Histogram
	lag         prometheus.Histogram
	backlog     prometheus.Gauge
	oldest      prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		relayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "yolda_relay_published_total", Help: "Outbox rows published and confirmed by the broker.",
		}),
		republished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "yolda_relay_republished_total", Help: "Outbox rows published again because the broker may have lost them, by reason.",
		}, []string{"reason"}),
		held: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "yolda_relay_held_total", Help: "Outbox rows a stream refused at its limit, kept in the outbox to be tried again.",
		}),
		streamFill: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "yolda_stream_fill_ratio", Help: "How full a stream is against its count or size limit, whichever is nearer (0-1).",
		}, []string{"stream"}),
		streamMsgs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "yolda_stream_messages", Help: "Messages a stream holds.",
		}, []string{"stream"}),
		pruned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "yolda_outbox_pruned_total", Help: "Records of published outbox rows deleted after their retention.",
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
		reg.MustRegister(m.relayed, m.republished, m.held, m.streamFill, m.streamMsgs, m.pruned, m.publish, m.lag, m.backlog, m.oldest)
	}
	return m
}

// String describes the relay's settings for the start-up log.
func (o Options) String() string {
	o = o.withDefaults()
	return fmt.Sprintf("batch=%d workers=%d poll=%s republish_window=%s retention=%s lease=%s", o.Batch, o.Workers, o.Poll, o.RepublishWindow, o.Retention, o.Lease)
}
