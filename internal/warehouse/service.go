package warehouse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/telemetry"
)

// Consumer is the durable name of the loader on the EVENTS stream.
const Consumer = "warehouse"

// DefaultSLAMinutes is the arrival SLA of an insurer whose file entry sets
// none.
const DefaultSLAMinutes = 45

// Options tune a Service.
type Options struct {
	// SLA is each insurer's arrival_sla_minutes.
	SLA SLA
	// Now is the clock (time.Now if nil).
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Service loads events into a Store and answers reports from it.
type Service struct {
	store Store
	sla   SLA
	now   func() time.Time
	log   *slog.Logger

	loaded    prometheus.Counter
	dupes     prometheus.Counter
	malformed prometheus.Counter
	batchSize prometheus.Observer
	commit    prometheus.Observer
	freshness prometheus.Observer
	lag       prometheus.Gauge

	mu sync.Mutex
	// newest is the latest occurred_at loaded by this process.
	newest time.Time
}

// New returns a service over store.
func New(store Store, o Options) (*Service, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.SLA.DefaultMinutes == 0 {
		o.SLA.DefaultMinutes = DefaultSLAMinutes
	}
	r := telemetry.NewRegistrar(o.Registerer)
	events := telemetry.Reuse(r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "yolda_warehouse_events_total", Help: "Events handed to the warehouse loader, by outcome (loaded, duplicate, malformed).",
	}, []string{"outcome"}))
	s := &Service{
		store: store, sla: o.SLA, now: o.Now, log: o.Logger,
		loaded: events.WithLabelValues("loaded"), dupes: events.WithLabelValues("duplicate"), malformed: events.WithLabelValues("malformed"),
		batchSize: telemetry.Reuse(r, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "yolda_warehouse_batch_size", Help: "Events per warehouse load transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		})),
		commit: telemetry.Reuse(r, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "yolda_warehouse_commit_seconds", Help: "Time of one warehouse load transaction.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		})),
		freshness: telemetry.Reuse(r, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "yolda_warehouse_event_delay_seconds", Help: "Time from an event's commit to its commit in the warehouse.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		})),
		lag: telemetry.Reuse(r, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "yolda_warehouse_lag_seconds",
			Help: "Age of the oldest event not yet in the warehouse (0 when caught up): how stale reports are.",
		})),
	}
	return s, r.Err()
}

// SLA is the arrival SLA the reports apply.
func (s *Service) SLA() SLA { return s.sla }

// LoadBatch loads one batch of event payloads in one warehouse
// transaction. results[i] is the outcome of payloads[i]: a malformed event
// fails alone (ErrMalformed; redelivery will not help). A non-nil err
// means the shared transaction failed and nothing was loaded: the caller
// retries the messages (one by one, to isolate a poisonous one).
func (s *Service) LoadBatch(ctx context.Context, payloads [][]byte) (results []error, err error) {
	results = make([]error, len(payloads))
	evs := make([]Event, 0, len(payloads))
	for i, p := range payloads {
		e, err := Decode(p)
		if err != nil {
			results[i] = err
			s.malformed.Inc()
			continue
		}
		evs = append(evs, e)
	}
	if len(evs) == 0 {
		return results, nil
	}
	start := s.now()
	n, err := s.store.Load(ctx, evs, Derive)
	if err != nil {
		return nil, fmt.Errorf("load %d events: %w", len(evs), err)
	}
	done := s.now()
	s.commit.Observe(done.Sub(start).Seconds())
	s.batchSize.Observe(float64(len(evs)))
	s.loaded.Add(float64(n))
	s.dupes.Add(float64(len(evs) - n))
	newest := time.Time{}
	for _, e := range evs {
		s.freshness.Observe(max(done.Sub(e.OccurredAt).Seconds(), 0))
		if e.OccurredAt.After(newest) {
			newest = e.OccurredAt
		}
	}
	s.mu.Lock()
	if newest.After(s.newest) {
		s.newest = newest
	}
	s.mu.Unlock()
	return results, nil
}

// Pending says how many events of the stream the warehouse has not loaded
// yet (the consumer's backlog across processes), and when the oldest of
// them was stored, if known.
type Pending func(ctx context.Context) (n uint64, oldest time.Time, err error)

// RunLag samples the lag gauge every interval until ctx ends: 0 when
// nothing waits; otherwise the age of the oldest waiting event, or, when
// the broker does not say, of the newest loaded one (the oldest waiting
// event is no older than that, give or take clock skew between
// producers).
func (s *Service) RunLag(ctx context.Context, pending Pending, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s.sampleLag(ctx, pending)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (s *Service) sampleLag(ctx context.Context, pending Pending) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, oldest, err := pending(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Debug("warehouse backlog not sampled", "err", err)
		}
		return
	}
	s.lag.Set(s.lagOf(n, oldest))
}

func (s *Service) lagOf(n uint64, oldest time.Time) float64 {
	if n == 0 {
		return 0
	}
	if oldest.IsZero() {
		s.mu.Lock()
		oldest = s.newest
		s.mu.Unlock()
	}
	if oldest.IsZero() {
		return 0
	}
	return max(s.now().Sub(oldest).Seconds(), 0)
}

// Requests answers the requests report.
func (s *Service) Requests(ctx context.Context, q Query) (Report, error) {
	return s.report(ctx, q, Columns(q, RequestMeasures), s.store.Requests)
}

// SLAReport answers the SLA report with the configured arrival SLAs.
func (s *Service) SLAReport(ctx context.Context, q Query) (Report, error) {
	q.SLA = s.sla
	return s.report(ctx, q, Columns(q, SLAMeasures), s.store.SLA)
}

// Breaches lists the arrivals later than their insurer's SLA, oldest first.
func (s *Service) Breaches(ctx context.Context, q Query) (Report, error) {
	q.SLA = s.sla
	q.GroupBy = nil
	return s.report(ctx, q, BreachColumns, s.store.Breaches)
}

// Insurers answers the insurers report.
func (s *Service) Insurers(ctx context.Context, q Query) (Report, error) {
	q.GroupBy = nil
	return s.report(ctx, q, InsurerColumns, s.store.Insurers)
}

func (s *Service) report(ctx context.Context, q Query, cols []string, run func(context.Context, Query) ([]Row, error)) (Report, error) {
	if q.Limit <= 0 || q.Limit > MaxRows {
		q.Limit = MaxRows
	}
	rows, err := run(ctx, q)
	if err != nil {
		if ctx.Err() != nil {
			return Report{}, ctx.Err()
		}
		return Report{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	out := Report{Columns: cols, Rows: rows}
	if len(rows) > q.Limit {
		out.Rows, out.Truncated = rows[:q.Limit], true
	}
	if out.Rows == nil {
		out.Rows = []Row{}
	}
	return out, nil
}

// Ping reports whether the warehouse answers.
func (s *Service) Ping(ctx context.Context) error { return s.store.Ping(ctx) }

// RebuildFromWarehouse re-derives every request fact and insurer call from
// the warehouse's own events fact: for when a report's definition changed.
func (s *Service) RebuildFromWarehouse(ctx context.Context) (int, error) {
	n, err := s.store.Rederive(ctx, Derive)
	if err != nil {
		return 0, fmt.Errorf("rederive facts: %w", err)
	}
	return n, nil
}

// ErrNotEmpty: a replay into a warehouse that already holds events.
var ErrNotEmpty = errors.New("warehouse is not empty")
