// Package hotread puts the cache (internal/cache) in front of the reads
// that are made far more often than what they read changes: a request's
// representation while its customer watches it, and the driver list of
// the operations board. It decorates the stores' ports, so the domain
// packages do not know it is there, and it invalidates in the same code
// path as the change, after its commit and before the writer is
// answered:
//
//   - A request's entry carries the request's version. Every change made
//     through intake.Store invalidates the request's key at the version it
//     committed; the cache's rules (a tombstone refuses older fills, a fill
//     never overwrites a newer version) then guarantee that once the
//     writer is answered, no process sharing the cache serves it an
//     older version, however reads and writes interleave.
//   - The driver list is scoped to the generation "drivers", moved on by
//     every change of a driver's row (availability, a new driver) and by
//     every request change that involves a driver (its current job).
//
// When the cache cannot be reached, reads go to the database; a lost
// invalidation makes the Redis cache move its epoch on at the next
// contact (see internal/cache/redis). docs/operations.md describes the
// guarantees and their one window.
package hotread

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/telemetry"
)

// Options configure the decorators.
type Options struct {
	// TTL bounds how long an entry may be served (default 30s): the
	// backstop if a change ever reached the database by a path that does
	// not invalidate.
	TTL time.Duration
	// Logger, Registerer: where failures and counts go (optional).
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

func (o Options) withDefaults() Options {
	if o.TTL <= 0 {
		o.TTL = 30 * time.Second
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// metrics count what the caches do, by cache (requests, drivers).
type metrics struct {
	reads  *prometheus.CounterVec // cache, outcome: hit, miss, bypass, error
	writes *prometheus.CounterVec // cache, outcome: invalidated, error
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	r := telemetry.NewRegistrar(reg)
	m := &metrics{
		reads: telemetry.Reuse(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "yolda_cache_reads_total",
			Help: "Reads through the hot-read cache by cache and outcome: hit, miss (read the database, filled), bypass (not cacheable), error (cache unavailable: read the database).",
		}, []string{"cache", "outcome"})),
		writes: telemetry.Reuse(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "yolda_cache_invalidations_total",
			Help: "Invalidations after a commit by cache and outcome (invalidated, error: the cache moves its epoch on at the next contact).",
		}, []string{"cache", "outcome"})),
	}
	return m, r.Err()
}

// warner logs a cache failure at most once every ten seconds.
type warner struct {
	log  *slog.Logger
	last atomic.Int64
}

func (w *warner) warn(ctx context.Context, what string, err error) {
	now := time.Now().UnixNano()
	last := w.last.Load()
	if now-last < int64(10*time.Second) || !w.last.CompareAndSwap(last, now) {
		return
	}
	w.log.WarnContext(ctx, "cache unavailable: reading the database", "op", what, "err", err)
}
