package dispatch

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
	"github.com/yolda/yolda/internal/telemetry"
)

// expireBatch is how many offers one expiry transaction ends at most.
const expireBatch = 500

// Expirer ends offers whose deadline passed and moves their requests on
// (the next dispatch job, committed with the expiry). It reads the
// deadlines from the database, so an offer expires even if the process
// that made it is gone; any number of expirers may run (the store skips
// offers another one holds). Wake makes it look before its next interval,
// for offers made in this process.
type Expirer struct {
	store     Store
	interval  time.Duration
	now       func() time.Time
	committed func()
	log       *slog.Logger
	expired   prometheus.Counter

	mu    sync.Mutex
	next  time.Time // earliest deadline Wake was told of
	wake  chan struct{}
	timer *time.Timer
}

// NewExpirer returns an expirer that looks every interval at least.
func NewExpirer(store Store, interval time.Duration, now func() time.Time, committed func(), log *slog.Logger, reg prometheus.Registerer) (*Expirer, error) {
	if interval <= 0 {
		interval = time.Second
	}
	if now == nil {
		now = time.Now
	}
	if committed == nil {
		committed = func() {}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := telemetry.NewRegistrar(reg)
	e := &Expirer{store: store, interval: interval, now: now, committed: committed, log: log,
		wake: make(chan struct{}, 1),
		expired: telemetry.Reuse(r, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "yolda_dispatch_offers_expired_total", Help: "Offers that reached their deadline unanswered.",
		})),
	}
	return e, r.Err()
}

// Wake asks for a look at the given deadline (or now, if it is zero).
func (e *Expirer) Wake(at time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !at.IsZero() && !e.next.IsZero() && !at.Before(e.next) {
		return
	}
	e.next = at
	d := time.Until(at)
	if at.IsZero() || d <= 0 {
		e.poke()
		return
	}
	if e.timer != nil {
		e.timer.Stop()
	}
	e.timer = time.AfterFunc(d, func() {
		e.mu.Lock()
		e.next = time.Time{}
		e.poke()
		e.mu.Unlock()
	})
}

// WakeNow is Wake for an offer found past its deadline.
func (e *Expirer) WakeNow() { e.Wake(time.Time{}) }

func (e *Expirer) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Run expires offers until ctx ends.
func (e *Expirer) Run(ctx context.Context) error {
	t := time.NewTicker(e.interval)
	defer t.Stop()
	defer func() {
		e.mu.Lock()
		if e.timer != nil {
			e.timer.Stop()
		}
		e.mu.Unlock()
	}()
	for {
		for {
			n, err := e.ExpireOnce(ctx)
			if err != nil {
				if ctx.Err() == nil {
					e.log.Warn("offer expiry failed", "err", err)
				}
				break
			}
			if n < expireBatch {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-e.wake:
		}
	}
}

// ExpireOnce ends the offers past their deadline now (one batch) and
// returns how many.
func (e *Expirer) ExpireOnce(ctx context.Context) (int, error) {
	now := e.now().UTC().Truncate(time.Microsecond)
	offers, err := e.store.ExpireOffers(ctx, now, expireBatch, func(o *Offer, r *intake.Request) ([]outbox.Message, error) {
		o.close(OfferExpired, now)
		return nextRound(*o, *r, outbox.SystemActor, "no answer before the deadline", now)
	})
	if err != nil {
		return 0, err
	}
	if len(offers) > 0 {
		e.expired.Add(float64(len(offers)))
		e.committed()
		e.log.Debug("offers expired", "count", len(offers))
	}
	return len(offers), nil
}
