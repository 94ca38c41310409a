// Package memory is the in-process rate limiter: the budgets of one
// process, in a map. It is the default (one process, or limits that need
// not be shared); the Redis limiter shares budgets between processes.
package memory

import (
	"context"
	"sync"
	"time"

	"github.com/yolda/yolda/internal/ratelimit"
)

// Limiter holds one cell per key. Cells whose budget has filled up again
// are forgotten (forgetting them changes nothing), so the map stays as
// large as the keys active over the longest window.
type Limiter struct {
	now func() time.Time

	mu    sync.Mutex
	cells map[string]ratelimit.Cell
	swept int64
}

// New returns an empty limiter on the clock now (time.Now when nil).
func New(now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{now: now, cells: map[string]ratelimit.Cell{}}
}

// sweepEvery is how often (µs) full cells are dropped.
const sweepEvery = int64(time.Minute / time.Microsecond)

// Allow spends one request from every check's budget, or from none. It
// never fails.
func (l *Limiter) Allow(_ context.Context, checks ...ratelimit.Check) (ratelimit.Decision, error) {
	now := ratelimit.Micros(l.now())
	tats := make([]ratelimit.Cell, len(checks))
	limits := make([]ratelimit.Limit, len(checks))
	l.mu.Lock()
	defer l.mu.Unlock()
	if now-l.swept > sweepEvery {
		for k, tat := range l.cells {
			if tat <= now {
				delete(l.cells, k)
			}
		}
		l.swept = now
	}
	for i, c := range checks {
		tats[i], limits[i] = l.cells[c.Key], c.Limit
	}
	d, next := ratelimit.Spend(now, tats, limits)
	for i, c := range checks {
		if next != nil {
			l.cells[c.Key] = next[i]
		}
	}
	return d, nil
}

// Len is how many keys the limiter remembers (for tests of forgetting).
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.cells)
}
