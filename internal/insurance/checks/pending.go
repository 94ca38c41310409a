package checks

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/insurance/resilient"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/telemetry"
)

// PendingSource counts the checks that can still settle, per insurer: the
// requests whose insurance is pending and that are not final (a cancelled
// request's check never settles, and is not waiting for anyone). The
// database is the truth: the queue does not know about checks it lost.
type PendingSource interface {
	PendingInsurance(ctx context.Context) ([]intake.PendingChecks, error)
}

// PendingGauges keeps yolda_insurer_checks_pending and
// yolda_insurer_oldest_pending_seconds up to date. The label is a
// configured insurer, or OtherInsurer for every code in the database that
// is not one (an insurer removed from the file): a series per stored code
// would let whoever stored them grow /metrics at will.
type PendingGauges struct {
	source  PendingSource
	count   *prometheus.GaugeVec
	oldest  *prometheus.GaugeVec
	now     func() time.Time
	log     *slog.Logger
	clients *resilient.Clients
}

// NewPendingGauges registers the gauges on reg (nil: not registered). now
// and log may be nil.
func NewPendingGauges(source PendingSource, clients *resilient.Clients, reg prometheus.Registerer, now func() time.Time, log *slog.Logger) (*PendingGauges, error) {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := telemetry.NewRegistrar(reg)
	g := &PendingGauges{
		source: source, clients: clients, now: now, log: log,
		count: telemetry.Reuse(r, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "yolda_insurer_checks_pending", Help: "Insurance checks that can still settle (pending, request not final), by insurer.",
		}, []string{"insurer"})),
		oldest: telemetry.Reuse(r, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "yolda_insurer_oldest_pending_seconds", Help: "Age of the oldest insurance check that can still settle, by insurer (0: none).",
		}, []string{"insurer"})),
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	return g, nil
}

// OtherInsurer is the insurer label of pending checks whose code is not
// configured.
const OtherInsurer = "other"

// Refresh reads the counts once.
func (g *PendingGauges) Refresh(ctx context.Context) error {
	stats, err := g.source.PendingInsurance(ctx)
	if err != nil {
		return err
	}
	type pending struct {
		count  int
		oldest time.Time
	}
	// Every label reads something: 0, not a stale value, once nothing is
	// pending.
	by := map[string]*pending{OtherInsurer: {}}
	for _, c := range g.clients.All() {
		by[c.Code()] = &pending{}
	}
	for _, p := range stats {
		code := p.Insurer
		if _, ok := g.clients.Get(code); !ok {
			code = OtherInsurer
		}
		agg := by[code]
		if agg.count == 0 || p.Oldest.Before(agg.oldest) {
			agg.oldest = p.Oldest
		}
		agg.count += p.Count
	}
	now := g.now()
	for code, p := range by {
		g.count.WithLabelValues(code).Set(float64(p.count))
		age := 0.0
		if p.count > 0 {
			age = max(now.Sub(p.oldest).Seconds(), 0)
		}
		g.oldest.WithLabelValues(code).Set(age)
	}
	return nil
}

// Run refreshes every interval until ctx ends.
func (g *PendingGauges) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := g.Refresh(ctx); err != nil && ctx.Err() == nil {
			g.log.Warn("pending insurance checks", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
