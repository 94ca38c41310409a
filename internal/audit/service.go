package audit

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/id"
	"github.com/yolda/yolda/internal/telemetry"
)

// Limits of a list page.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// DefaultRetention is how long events are kept unless configured.
const DefaultRetention = 400 * 24 * time.Hour

// pruneBatch bounds one pruning statement, so that pruning a large
// backlog never holds a long lock.
const pruneBatch = 1000

// Options configure a Service.
type Options struct {
	// Retention is how long events are kept (DefaultRetention if 0).
	Retention time.Duration
	// PruneEvery is how often Run prunes (1h if 0).
	PruneEvery time.Duration
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Service records, lists and prunes the trail.
type Service struct {
	store     Store
	retention time.Duration
	every     time.Duration
	now       func() time.Time
	log       *slog.Logger
	recorded  *prometheus.CounterVec
	failures  prometheus.Counter
	pruned    prometheus.Counter
}

// NewService returns a service over store.
func NewService(store Store, o Options) (*Service, error) {
	s := &Service{store: store, retention: o.Retention, every: o.PruneEvery, now: o.Now, log: o.Logger}
	if s.retention <= 0 {
		s.retention = DefaultRetention
	}
	if s.every <= 0 {
		s.every = time.Hour
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	r := telemetry.NewRegistrar(o.Registerer)
	s.recorded = telemetry.Reuse(r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "yolda_audit_events_total", Help: "Audit events recorded outside a transaction of their own, by action.",
	}, []string{"action"}))
	s.failures = telemetry.Reuse(r, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "yolda_audit_record_failures_total", Help: "Audit events that could not be stored (logged instead).",
	}))
	s.pruned = telemetry.Reuse(r, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "yolda_audit_pruned_total", Help: "Audit events deleted after the retention.",
	}))
	return s, r.Err()
}

// Record implements Recorder: best-effort, counted and logged on failure
// (the event itself goes to the log then, so it is not lost outright).
func (s *Service) Record(ctx context.Context, e Event) {
	if e.ID == "" {
		e.At = s.now().UTC().Truncate(time.Microsecond)
		e.ID = id.New("aud", e.At)
	}
	if o := OriginFrom(ctx); e.Address == "" && e.RequestID == "" {
		e.Address, e.RequestID = o.Address, o.RequestID
	}
	if !e.Action.Valid() {
		s.log.ErrorContext(ctx, "audit: unknown action refused", "action", string(e.Action))
		s.failures.Inc()
		return
	}
	// The caller's context may end with its request; the event should
	// still be written, within a bound.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.store.AppendAudit(wctx, e); err != nil {
		s.failures.Inc()
		s.log.ErrorContext(ctx, "audit: event not stored", "err", err, "id", e.ID, "action", string(e.Action),
			"actor", e.ActorID, "target", e.Target, "address", e.Address, "request_id", e.RequestID)
		return
	}
	s.recorded.WithLabelValues(string(e.Action)).Inc()
}

// List returns a page of events, newest first.
func (s *Service) List(ctx context.Context, f Filter) (Page, error) {
	if f.Limit <= 0 {
		f.Limit = DefaultLimit
	}
	limit := f.Limit
	f.Limit++ // one more says whether there is a next page
	items, err := s.store.AuditEvents(ctx, f)
	if err != nil {
		return Page{}, fmt.Errorf("list audit events: %w", err)
	}
	p := Page{Items: items}
	if len(items) > limit {
		p.Items = items[:limit]
		p.NextCursor = items[limit-1].ID
	}
	return p, nil
}

// Page is one page of a list.
type Page struct {
	Items      []Event
	NextCursor string
}

// Prune deletes what is older than the retention, in batches, and says
// how many events it deleted.
func (s *Service) Prune(ctx context.Context) (int, error) {
	before := s.now().Add(-s.retention)
	total := 0
	for {
		n, err := s.store.PruneAudit(ctx, before, pruneBatch)
		total += n
		s.pruned.Add(float64(n))
		if err != nil {
			return total, fmt.Errorf("prune audit: %w", err)
		}
		if n < pruneBatch {
			return total, nil
		}
	}
}

// Run prunes every PruneEvery until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		if n, err := s.Prune(ctx); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "audit retention", "err", err)
		} else if n > 0 {
			s.log.InfoContext(ctx, "audit events pruned", "count", n, "retention", s.retention.String())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
