// Package sweeper is the self-healing loop of the messaging backbone: the
// queue is for speed, the database is the truth. It looks at requests that
// sat in a non-final status longer than that status should take and, for
// each job that should be moving the request on, asks the broker whether
// the job is still there (waiting, parked behind an open breaker, being
// worked on). Only a job the broker no longer has (it lost it, it aged out,
// or its consumer gave up and dead-lettered it) is committed again, with a
// back-off per request; after MaxNudges such re-commits in one wait the
// request is flagged stuck for operators. A request whose jobs have not yet
// left the outbox is not looked at: re-committing them would only add to
// the backlog.
//
// Workers are idempotent, so a re-commit that races a slow worker is
// harmless. Sweepers in several processes may run at once: a decision is
// recorded only if the request is as the sweeper read it.
package sweeper

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
)

// Due is a request the sweeper should look at, as read.
type Due struct {
	Request intake.Request
	// Nudges is how many times its jobs were committed again in this wait
	// (since its last change).
	Nudges int
	// Next is when it was scheduled to be looked at (nil: not yet in this
	// wait).
	Next *time.Time
	// Stuck reports whether it is flagged stuck.
	Stuck bool
}

// Decision is what the sweeper decided about a due request.
type Decision struct {
	// RequestID, Version, Nudges and ReadNext are the request as read: the
	// decision is recorded only if it is still so.
	RequestID string
	Version   int
	Nudges    int
	ReadNext  *time.Time
	// Jobs are committed again (none: the request was only looked at).
	// Recording them counts a nudge.
	Jobs []outbox.Message
	// Next is when to look at the request again.
	Next time.Time
	// Stuck flags the request stuck (it stays flagged until it changes).
	Stuck bool
}

// Store finds the requests due and records the sweeper's decisions.
type Store interface {
	// DueRequests returns up to limit requests in status that are due: not
	// yet looked at in this wait and unchanged since before olderThan, or
	// scheduled for a look at or before now; whose latest jobs have left
	// the outbox (the change or the nudge that committed them is older
	// than the oldest unsent row); and that hold no open offer before its
	// deadline (dispatch's job is done and the offer's end commits the
	// next: the broker has lost nothing). Longest waiting first; nothing
	// is locked.
	DueRequests(ctx context.Context, status intake.Status, olderThan, now time.Time, limit int) ([]Due, error)
	// RecordNudges records decisions made at now in one transaction,
	// skipping any whose request is no longer as read (it changed, or
	// another sweeper decided meanwhile), and commits the jobs of those
	// recorded. It returns the ids recorded.
	RecordNudges(ctx context.Context, now time.Time, ds []Decision) ([]string, error)
	// StuckRequests counts the requests flagged stuck, per status.
	StuckRequests(ctx context.Context) (map[intake.Status]int, error)
}

// Broker tells whether a job is still in the broker.
type Broker interface {
	// HasMessage reports whether the stream holding subject has a message
	// on it (a job's subject names its request).
	HasMessage(ctx context.Context, subject string) (bool, error)
}

// Rule says how long a request may stay in a status before it is looked at.
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

// Options tune a sweeper. Zero values take the defaults.
type Options struct {
	// Interval between sweeps (10s).
	Interval time.Duration
	// MaxNudges is how many times a request's jobs are committed again in
	// one wait before it is flagged stuck (5). Re-commits go on after it,
	// every MaxBackoff.
	MaxNudges int
	// MaxBackoff caps the wait between two looks at a request (1h): the
	// n-th re-commit is followed by a wait of the rule's After times 2^n.
	MaxBackoff time.Duration
	// Batch is how many requests one store call handles (500).
	Batch int
	// Now is the clock (time.Now).
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Interval <= 0 {
		o.Interval = 10 * time.Second
	}
	if o.MaxNudges <= 0 {
		o.MaxNudges = 5
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = time.Hour
	}
	if o.Batch <= 0 {
		o.Batch = 500
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Sweeper runs the rules periodically.
type Sweeper struct {
	store  Store
	broker Broker
	jobs   func(intake.Request) ([]outbox.Message, error)
	rules  []Rule
	opts   Options
	log    *slog.Logger

	nudged  *prometheus.CounterVec
	looked  *prometheus.CounterVec
	flagged *prometheus.CounterVec
	stuck   *prometheus.GaugeVec
	runs    prometheus.Counter
}

// New returns a sweeper. jobs builds the messages that move a request on
// from its current status (intake.Service.Jobs). reg may be nil.
func New(store Store, broker Broker, jobs func(intake.Request) ([]outbox.Message, error), rules []Rule, opts Options,
	log *slog.Logger, reg prometheus.Registerer) *Sweeper {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sweeper{
		store: store, broker: broker, jobs: jobs, rules: rules, opts: opts.withDefaults(), log: log,
		nudged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "yolda_sweeper_nudged_total", Help: "Requests whose jobs the sweeper committed again (the broker no longer had them), by the status they were waiting in.",
		}, []string{"status"}),
		looked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "yolda_sweeper_parked_total", Help: "Waiting requests the sweeper looked at and left alone: every job they need is still in the broker.",
		}, []string{"status"}),
		flagged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "yolda_sweeper_stuck_total", Help: "Requests flagged stuck: their jobs were committed again MaxNudges times in one wait.",
		}, []string{"status"}),
		stuck: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "yolda_requests_stuck", Help: "Requests flagged stuck by the sweeper and not changed since, by status. Operators look at them.",
		}, []string{"status"}),
		runs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "yolda_sweeper_runs_total", Help: "Sweeps run.",
		}),
	}
	if reg != nil {
		reg.MustRegister(s.nudged, s.looked, s.flagged, s.stuck, s.runs)
	}
	return s
}

// Run sweeps every interval until ctx ends.
func (s *Sweeper) Run(ctx context.Context) error {
	t := time.NewTicker(s.opts.Interval)
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

// Result is what one sweep did, per status.
type Result struct {
	// Nudged: requests whose jobs were committed again.
	Nudged map[intake.Status]int
	// Parked: requests looked at whose jobs are all still in the broker.
	Parked map[intake.Status]int
	// Stuck: requests flagged stuck by this sweep.
	Stuck map[intake.Status]int
}

// SweepOnce applies every rule once.
func (s *Sweeper) SweepOnce(ctx context.Context) (Result, error) {
	s.runs.Inc()
	res := Result{Nudged: map[intake.Status]int{}, Parked: map[intake.Status]int{}, Stuck: map[intake.Status]int{}}
	now := s.opts.Now().UTC()
	for _, rule := range s.rules {
		// A batch whose every request is skipped (the broker did not
		// answer) would come back at once: stop at the first such batch.
		for {
			due, err := s.store.DueRequests(ctx, rule.Status, now.Add(-rule.After), now, s.opts.Batch)
			if err != nil {
				return res, err
			}
			ds, flagged := s.decide(ctx, rule, now, due)
			if len(ds) > 0 {
				ids, err := s.store.RecordNudges(ctx, now, ds)
				if err != nil {
					return res, err
				}
				s.count(rule.Status, ds, ids, flagged, &res)
			}
			if len(due) < s.opts.Batch || len(ds) == 0 {
				break
			}
		}
	}
	if n := res.Nudged; len(n) > 0 {
		s.log.Info("committed again jobs the broker no longer had", "requests", n)
	}
	if counts, err := s.store.StuckRequests(ctx); err == nil {
		for _, rule := range s.rules {
			s.stuck.WithLabelValues(string(rule.Status)).Set(float64(counts[rule.Status]))
		}
	}
	return res, nil
}

// decide looks at each due request's jobs in the broker. It returns the
// decisions and which of them newly flag a request stuck.
func (s *Sweeper) decide(ctx context.Context, rule Rule, now time.Time, due []Due) ([]Decision, map[string]bool) {
	var ds []Decision
	flagged := map[string]bool{}
	for _, d := range due {
		jobs, err := s.jobs(d.Request)
		if err != nil {
			s.log.Warn("sweeper: build jobs", "request_id", d.Request.ID, "err", err)
			continue
		}
		var missing []outbox.Message
		answered := true
		for _, m := range jobs {
			has, err := s.broker.HasMessage(ctx, m.Subject)
			if err != nil {
				// Unknown is not lost: look again next sweep.
				s.log.Debug("sweeper: broker did not answer", "subject", m.Subject, "err", err)
				answered = false
				break
			}
			if !has {
				missing = append(missing, m)
			}
		}
		if !answered {
			continue
		}
		dec := Decision{RequestID: d.Request.ID, Version: d.Request.Version, Nudges: d.Nudges, ReadNext: d.Next,
			Next: now.Add(rule.After), Stuck: d.Stuck}
		switch {
		case len(jobs) == 0:
			// Nothing moves it on but a person (an insurance question in
			// manual review): look again rarely.
			dec.Next = now.Add(s.opts.MaxBackoff)
		case len(missing) > 0:
			n := d.Nudges + 1
			dec.Jobs = missing
			dec.Next = now.Add(min(rule.After<<min(n, 20), s.opts.MaxBackoff))
			if n >= s.opts.MaxNudges && !d.Stuck {
				dec.Stuck = true
				flagged[d.Request.ID] = true
			}
		}
		ds = append(ds, dec)
	}
	return ds, flagged
}

func (s *Sweeper) count(status intake.Status, ds []Decision, recorded []string, flagged map[string]bool, res *Result) {
	ok := make(map[string]bool, len(recorded))
	for _, id := range recorded {
		ok[id] = true
	}
	label := string(status)
	for _, d := range ds {
		if !ok[d.RequestID] {
			continue // changed meanwhile, or another sweeper decided
		}
		switch {
		case len(d.Jobs) > 0:
			res.Nudged[status]++
			s.nudged.WithLabelValues(label).Inc()
		default:
			res.Parked[status]++
			s.looked.WithLabelValues(label).Inc()
		}
		if flagged[d.RequestID] {
			res.Stuck[status]++
			s.flagged.WithLabelValues(label).Inc()
			s.log.Warn("request stuck: its jobs were lost again and again; an operator should look", "request_id", d.RequestID,
				"status", status, "nudges", d.Nudges+1)
		}
	}
}
