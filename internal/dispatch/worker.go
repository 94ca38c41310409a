package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/geo"
	"github.com/yolda/yolda/internal/id"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
	"github.com/yolda/yolda/internal/telemetry"
)

// system is who the worker and the expirer act as.
var system = identity.Principal{UserID: "system", Role: identity.Operator}

// Job is one dispatch.request job as the worker gets it.
type Job struct {
	// MessageID is the job's envelope id: the receipt's key.
	MessageID string
	RequestID string
}

// RetryError asks for a job again after a while. It is not a failure: the
// request is waiting for a driver, or lost a race and is decided again.
type RetryError struct {
	After  time.Duration
	Reason string
}

func (e *RetryError) Error() string { return fmt.Sprintf("%s: retry in %s", e.Reason, e.After) }

// maxPasses bounds how often one Handle decides again for requests whose
// decision lost a race (a driver taken by another worker, a request
// changed under it) before handing the job back for later.
const maxPasses = 3

// lostRaceDelay is how long a job that kept losing races waits.
const lostRaceDelay = 100 * time.Millisecond

// WorkerOptions tune a Worker. Zero fields take defaults.
type WorkerOptions struct {
	Config Config
	Now    func() time.Time
	// Committed is called after a commit that wrote outbox messages.
	Committed func()
	// Deadline is called with every new offer's deadline, so that an
	// in-process expirer can be on time.
	Deadline   func(time.Time)
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Worker turns dispatch jobs into offers: for each dispatching request
// without an open offer, the best free driver in reach (by ETA) gets one;
// a request past its last round, or without a driver in reach for
// Config.Wait, becomes unfulfilled. A batch of jobs is decided together
// and committed in one transaction.
type Worker struct {
	store     Store
	fleet     Fleet
	cfg       Config
	now       func() time.Time
	committed func()
	deadline  func(time.Time)
	log       *slog.Logger

	decisions *prometheus.CounterVec
	latency   prometheus.Histogram
	matched   *prometheus.CounterVec
}

// NewWorker returns a worker.
func NewWorker(store Store, fleet Fleet, o WorkerOptions) (*Worker, error) {
	cfg := o.Config.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	w := &Worker{store: store, fleet: fleet, cfg: cfg,
		now: o.Now, committed: o.Committed, deadline: o.Deadline, log: o.Logger}
	if w.now == nil {
		w.now = time.Now
	}
	if w.committed == nil {
		w.committed = func() {}
	}
	if w.deadline == nil {
		w.deadline = func(time.Time) {}
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	r := telemetry.NewRegistrar(o.Registerer)
	w.decisions = telemetry.Reuse(r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "yolda_dispatch_decisions_total",
		Help: "Dispatch decisions by outcome: offer, unfulfilled, wait (no free driver yet), lost (decided again), none (nothing to do).",
	}, []string{"outcome"}))
	w.latency = telemetry.Reuse(r, prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "yolda_dispatch_decision_seconds",
		Help:    "Time from a batch of dispatch jobs received to its offers stored and announced (committed with their events).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	}))
	w.matched = telemetry.Reuse(r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "yolda_dispatch_matched_total", Help: "Requests matched to a driver, by method: greedy (nearest first) or batch (minimum total ETA).",
	}, []string{"method"}))
	if err := r.Err(); err != nil {
		return nil, err
	}
	return w, nil
}

// Handle decides for a batch of jobs and returns each job's outcome: nil
// (done: an offer made, the request unfulfilled, or nothing left to do), a
// *RetryError, or a failure. Several jobs for one request share one
// decision. A non-nil error means nothing was committed.
func (w *Worker) Handle(ctx context.Context, jobs []Job) ([]error, error) {
	start := time.Now()
	results := make([]error, len(jobs))
	byRequest := make(map[string][]int, len(jobs))
	var todo []Job
	for i, j := range jobs {
		if !id.Valid("req", j.RequestID) {
			results[i] = fmt.Errorf("dispatch job %s: bad request id %q", j.MessageID, j.RequestID)
			continue
		}
		if _, seen := byRequest[j.RequestID]; !seen {
			todo = append(todo, j)
		}
		byRequest[j.RequestID] = append(byRequest[j.RequestID], i)
	}
	for pass := 0; len(todo) > 0; pass++ {
		if pass == maxPasses {
			for _, j := range todo {
				for _, i := range byRequest[j.RequestID] {
					results[i] = &RetryError{After: lostRaceDelay, Reason: "lost the race for drivers " + fmt.Sprint(maxPasses) + " times"}
				}
			}
			break
		}
		outcomes, again, err := w.pass(ctx, todo, start)
		if err != nil {
			return nil, err
		}
		for reqID, out := range outcomes {
			for _, i := range byRequest[reqID] {
				results[i] = out
			}
		}
		todo = again
	}
	return results, nil
}

// plan is one request that needs a driver.
type plan struct {
	job     Job
	snap    *Snapshot
	next    int // the round its next offer takes at the earliest
	exclude []string
	waiting time.Time      // since when it has been without an open offer
	cands   []fleet.Ranked // free ones, fastest first
	chosen  int            // index in cands, or -1
}

// pass decides once for jobs (one per request) and commits. It returns the
// outcome of each request it settled and the jobs to decide again.
func (w *Worker) pass(ctx context.Context, jobs []Job, start time.Time) (map[string]error, []Job, error) {
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.RequestID
	}
	snaps, err := w.store.Snapshots(ctx, ids)
	if err != nil {
		return nil, nil, fmt.Errorf("read dispatch state: %w", err)
	}
	bySnap := make(map[string]*Snapshot, len(snaps))
	for i := range snaps {
		bySnap[snaps[i].Request.ID] = &snaps[i]
	}
	now := w.now().UTC().Truncate(time.Microsecond)
	outcomes := make(map[string]error, len(jobs))
	var decisions []*Decision
	var plans []*plan
	for _, j := range jobs {
		s := bySnap[j.RequestID]
		if s == nil {
			outcomes[j.RequestID] = nil // no such request: nothing to do
			w.decisions.WithLabelValues("none").Inc()
			continue
		}
		p, reason, ok := w.assess(j, s)
		switch {
		case !ok:
			outcomes[j.RequestID] = nil
			w.decisions.WithLabelValues("none").Inc()
		case reason != "":
			d, err := w.unfulfilled(j, s, reason, now)
			if err != nil {
				outcomes[j.RequestID] = err
				continue
			}
			decisions = append(decisions, d)
		default:
			plans = append(plans, p)
		}
	}
	if err := w.search(ctx, plans); err != nil {
		return nil, nil, err
	}
	w.match(plans, now)
	for _, p := range plans {
		if p.chosen >= 0 {
			d, err := w.offer(p, now)
			if err != nil {
				outcomes[p.job.RequestID] = err
				continue
			}
			decisions = append(decisions, d)
			continue
		}
		waited := now.Sub(p.waiting)
		if waited >= w.cfg.Wait {
			d, err := w.unfulfilled(p.job, p.snap, fmt.Sprintf("no free driver within %g km for %s", w.cfg.widest(), w.cfg.Wait), now)
			if err != nil {
				outcomes[p.job.RequestID] = err
				continue
			}
			decisions = append(decisions, d)
			continue
		}
		outcomes[p.job.RequestID] = &RetryError{After: min(w.cfg.RetryEvery, w.cfg.Wait-waited), Reason: "no free driver in reach"}
		w.decisions.WithLabelValues("wait").Inc()
	}
	if len(decisions) == 0 {
		return outcomes, nil, nil
	}
	if err := w.store.CommitDecisions(ctx, decisions); err != nil {
		return nil, nil, fmt.Errorf("commit dispatch decisions: %w", err)
	}
	took := time.Since(start).Seconds()
	var again []Job
	wrote := false
	for _, d := range decisions {
		switch {
		case d.Err == nil:
			wrote = true
			outcomes[d.RequestID] = nil
			w.latency.Observe(took)
			if d.Offer != nil {
				w.deadline(d.Offer.ExpiresAt)
				w.decisions.WithLabelValues("offer").Inc()
			} else {
				w.decisions.WithLabelValues("unfulfilled").Inc()
			}
		case errors.Is(d.Err, outbox.ErrAlreadyProcessed):
			outcomes[d.RequestID] = nil
			w.decisions.WithLabelValues("none").Inc()
		case errors.Is(d.Err, ErrStale), errors.Is(d.Err, ErrDriverTaken):
			again = append(again, Job{RequestID: d.RequestID, MessageID: receiptOf(d)})
			w.decisions.WithLabelValues("lost").Inc()
		default:
			outcomes[d.RequestID] = d.Err
		}
	}
	if wrote {
		w.committed()
	}
	return outcomes, again, nil
}

func receiptOf(d *Decision) string {
	if d.Change.Receipt != nil {
		return d.Change.Receipt.MessageID
	}
	return ""
}

// assess reads a snapshot. ok is false when the request needs nothing
// (not dispatching, or an offer is open); a non-empty reason means it has
// used up its rounds and is unfulfilled; otherwise the plan says where its
// search stands.
func (w *Worker) assess(j Job, s *Snapshot) (p *plan, reason string, ok bool) {
	r := s.Request
	if r.Status != intake.StatusDispatching {
		return nil, "", false
	}
	// Rounds count from the request's latest start of dispatching, so an
	// operator's second dispatch gets every round again.
	since := r.CreatedAt
	for _, e := range r.Timeline {
		if e.Status == intake.StatusDispatching {
			since = e.At
		}
	}
	p = &plan{job: j, snap: s, waiting: since, chosen: -1}
	for _, o := range s.Offers {
		if o.Status == OfferOpen {
			return nil, "", false
		}
		// A driver is offered a request once (the database refuses a second).
		p.exclude = append(p.exclude, o.DriverID)
		if o.CreatedAt.Before(since) {
			continue
		}
		p.next = max(p.next, o.Round+1)
		if o.DecidedAt != nil && o.DecidedAt.After(p.waiting) {
			p.waiting = *o.DecidedAt
		}
	}
	if p.next >= len(w.cfg.RadiiKm) {
		return nil, fmt.Sprintf("no driver took the job in %d rounds", len(w.cfg.RadiiKm)), true
	}
	return p, "", true
}

// searchRounds bounds how often search looks further for a request
// whose nearest candidates all turned out taken.
const searchRounds = 3

// search fills each plan's candidates: free drivers within the widest
// radius, by the index and then by the database, fastest first. The index
// does not know which drivers hold an open offer; at a peak a request's
// nearest drivers may all hold one, so a request left with no free
// candidate among a full answer asks again, for more, without those.
func (w *Worker) search(ctx context.Context, plans []*plan) error {
	todo := plans
	limit := w.cfg.Candidates
	for round := 0; round < searchRounds && len(todo) > 0; round++ {
		found := make([][]fleet.Ranked, len(todo))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(8) // the Redis index answers each query in a round trip
		for i, p := range todo {
			loc := p.snap.Request.Location
			q := fleet.CandidateQuery{At: geo.Point{Lat: loc.Lat, Lng: loc.Lng}, Service: p.snap.Request.ServiceType,
				RadiusKm: w.cfg.widest(), Limit: limit, Exclude: p.exclude}
			g.Go(func() error {
				c, err := w.fleet.Candidates(gctx, q)
				found[i] = c
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return fmt.Errorf("find candidates: %w", err)
		}
		var ids []string
		seen := map[string]bool{}
		for _, cs := range found {
			for _, c := range cs {
				if !seen[c.DriverID] {
					seen[c.DriverID] = true
					ids = append(ids, c.DriverID)
				}
			}
		}
		if len(ids) == 0 {
			return nil
		}
		free, err := w.store.FreeDrivers(ctx, ids)
		if err != nil {
			return fmt.Errorf("check candidates: %w", err)
		}
		isFree := make(map[string]bool, len(free))
		for _, d := range free {
			isFree[d] = true
		}
		var starved []*plan
		for i, p := range todo {
			var taken []string
			for _, c := range found[i] {
				switch {
				case !isFree[c.DriverID]:
					taken = append(taken, c.DriverID)
				case w.cfg.roundFor(p.next, c.DistanceKm) >= 0:
					p.cands = append(p.cands, c)
				}
			}
			if len(p.cands) == 0 && len(found[i]) == limit {
				p.exclude = append(p.exclude, taken...)
				starved = append(starved, p)
			}
		}
		todo = starved
		limit = min(limit*4, fleet.MaxNearbyLimit)
	}
	return nil
}

// offer is the decision to offer p's chosen candidate.
func (w *Worker) offer(p *plan, now time.Time) (*Decision, error) {
	c := p.cands[p.chosen]
	o := Offer{
		ID: id.New("ofr", now), RequestID: p.job.RequestID, DriverID: c.DriverID,
		Round: w.cfg.roundFor(p.next, c.DistanceKm), ETASeconds: int(math.Round(c.ETA.Seconds())),
		DistanceM: int(math.Round(c.DistanceKm * 1000)), Status: OfferOpen,
		CreatedAt: now, ExpiresAt: now.Add(w.cfg.OfferTimeout),
	}
	ev, err := offerCreated(o, p.snap.Request)
	if err != nil {
		return nil, err
	}
	return &Decision{RequestID: p.job.RequestID, Version: p.snap.Request.Version, Offers: len(p.snap.Offers),
		Offer: &o, Change: intake.Change{Outbox: []outbox.Message{ev}, Receipt: receipt(p.job)}}, nil
}

// unfulfilled is the decision to give up on a request: operators take over.
func (w *Worker) unfulfilled(j Job, s *Snapshot, reason string, now time.Time) (*Decision, error) {
	r := s.Request
	r.Advance(now)
	change, err := intake.Transition(&r, system, intake.StatusUnfulfilled, reason, now)
	if err != nil {
		return nil, err
	}
	change.Receipt = receipt(j)
	return &Decision{RequestID: j.RequestID, Version: s.Request.Version, Offers: len(s.Offers), Request: &r, Change: change}, nil
}

func receipt(j Job) *outbox.Receipt {
	if j.MessageID == "" {
		return nil
	}
	return &outbox.Receipt{Consumer: Consumer, MessageID: j.MessageID}
}
