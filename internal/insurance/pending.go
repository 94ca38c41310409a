package insurance

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/intake"
)

// PendingSource counts the checks waiting for each insurer (the database
// is the truth: the queue does not know about checks it lost).
type PendingSource interface {
	PendingInsurance(ctx context.Context) ([]intake.PendingChecks, error)
}

// PendingGauges keeps yolda_insurer_checks_pending and
// yolda_insurer_oldest_pending_seconds up to date.
type PendingGauges struct {
	source  PendingSource
	count   *prometheus.GaugeVec
	oldest  *prometheus.GaugeVec
	now     func() time.Time
	log     *slog.Logger
	clients *Clients
}

// NewPendingGauges registers the gauges on reg (nil: not registered).
func NewPendingGauges(source PendingSource, clients *Clients, reg prometheus.Registerer, log *slog.Logger) *PendingGauges {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &PendingGauges{
		source: source, clients: clients, now: time.Now, log: log,
		count: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "yolda_insurer_checks_pending", Help: "Requests whose insurance check is pending, by insurer.",
		}, []string{"insurer"}),
		oldest: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "yolda_insurer_oldest_pending_seconds", Help: "Age of the oldest pending insurance check, by insurer.",
		}, []string{"insurer"}),
	}
	if reg != nil {
		reg.MustRegister(g.count, g.oldest)
	}
	return g
}

// Refresh reads the counts once.
func (g *PendingGauges) Refresh(ctx context.Context) error {
	stats, err := g.source.PendingInsurance(ctx)
	if err != nil {
		return err
	}
	// The label is the configured insurer, or OtherInsurer for every code
	// found in the database that is not one: stored codes come from
	// clients (with no insurers configured any well-formed code is taken),
	// and a label per stored code would let them grow /metrics at will.
	type pending struct {
		count  int
		oldest time.Time
	}
	by := map[string]*pending{OtherInsurer: {}}
	for _, c := range g.clients.All() {
		by[c.Code()] = &pending{} // nothing pending reads 0, not a stale value
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
			age = now.Sub(p.oldest).Seconds()
		}
		g.oldest.WithLabelValues(code).Set(age)
	}
	return nil
}

// OtherInsurer is the insurer label of pending checks whose code is not
// configured.
const OtherInsurer = "other"

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
