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
	// Insurers with nothing pending read 0, not a stale value.
	for _, c := range g.clients.All() {
		g.count.WithLabelValues(c.Code()).Set(0)
		g.oldest.WithLabelValues(c.Code()).Set(0)
	}
	now := g.now()
	for _, p := range stats {
		g.count.WithLabelValues(p.Insurer).Set(float64(p.Count))
		g.oldest.WithLabelValues(p.Insurer).Set(now.Sub(p.Oldest).Seconds())
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
