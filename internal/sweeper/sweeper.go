// Package sweeper is the self-healing loop of the messaging backbone: the
// queue is for speed, the database is the truth. It finds requests that sat
// in a non-final status longer than that status should take (a lost
// message, a crashed worker, an expired offer) and commits again the job
// that moves them on. Workers are idempotent, so a nudge that races a slow
// worker is harmless. Every store implementation lets several sweepers run
// at once (PostgreSQL skips rows another sweeper holds).
package sweeper

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
)

// Store finds and nudges stale requests.
type Store interface {
	NudgeStale(ctx context.Context, status intake.Status, olderThan, now time.Time, limit int,
		jobs func(intake.Request) ([]outbox.Message, error)) ([]string, error)
}

// Rule says how long a request may stay in a status before it is nudged.
type Rule struct {
	Status intake.Status
	After  time.Duration
}

// DefaultRules are the thresholds docs/operations.md documents.
var DefaultRules = []Rule{
	{Status: intake.StatusReceived, After: 30 * time.Second},
	{Status: intake.StatusAwaitingInsurance, After: 2 * time.Minute},
	{Status: intake.StatusDispatching, After: 2 * time.Minute},
}

// Sweeper runs the rules periodically.
type Sweeper struct {
	store    Store
	jobs     func(intake.Request) ([]outbox.Message, error)
	rules    []Rule
	interval time.Duration
	now      func() time.Time
	log      *slog.Logger
	nudged   *prometheus.CounterVec
	runs     prometheus.Counter
}

// New returns a sweeper. jobs builds the messages that move a request on
// from its current status (intake.Service.Jobs). reg may be nil.
func New(store Store, jobs func(intake.Request) ([]outbox.Message, error), rules []Rule, interval time.Duration,
	log *slog.Logger, reg prometheus.Registerer) *Sweeper {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if interval <= 0 {
		interval = 10 * time.Second
	}
	s := &Sweeper{
		store: store, jobs: jobs, rules: rules, interval: interval, now: time.Now, log: log,
		nudged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "yolda_sweeper_nudged_total", Help: "Requests whose job the sweeper committed again, by the status they were stuck in.",
		}, []string{"status"}),
		runs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "yolda_sweeper_runs_total", Help: "Sweeps run.",
		}),
	}
	if reg != nil {
		reg.MustRegister(s.nudged, s.runs)
	}
	return s
}

// Run sweeps every interval until ctx ends.
func (s *Sweeper) Run(ctx context.Context) error {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		if _, err := s.SweepOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("sweep failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// SweepOnce applies every rule once and returns how many requests each
// status had nudged.
func (s *Sweeper) SweepOnce(ctx context.Context) (map[intake.Status]int, error) {
	s.runs.Inc()
	out := map[intake.Status]int{}
	now := s.now().UTC()
	for _, rule := range s.rules {
		for {
			ids, err := s.store.NudgeStale(ctx, rule.Status, now.Add(-rule.After), now, 500, s.jobs)
			if err != nil {
				return out, err
			}
			out[rule.Status] += len(ids)
			s.nudged.WithLabelValues(string(rule.Status)).Add(float64(len(ids)))
			if len(ids) > 0 {
				s.log.Info("nudged stale requests", "status", rule.Status, "count", len(ids), "after", rule.After.String())
			}
			if len(ids) < 500 {
				break
			}
		}
	}
	return out, nil
}
