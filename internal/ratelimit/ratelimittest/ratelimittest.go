// Package ratelimittest is the conformance suite of the rate limiters:
// every backend (in-process, Redis) runs it and must agree with
// ratelimit.Spend to the microsecond, on a clock the suite moves.
package ratelimittest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/ratelimit"
)

// Limiter is the port under test.
type Limiter interface {
	Allow(ctx context.Context, checks ...ratelimit.Check) (ratelimit.Decision, error)
}

// Backend returns an empty limiter (no key of an earlier test visible)
// that reads the time from now.
type Backend func(t *testing.T, now func() time.Time) Limiter

// Clock is a clock the suite moves by hand.
type Clock struct{ ns atomic.Int64 }

// NewClock starts at a fixed instant.
func NewClock() *Clock {
	c := &Clock{}
	c.ns.Store(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC).UnixNano())
	return c
}

// Now is the clock's time.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

// Advance moves the clock on.
func (c *Clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// Run runs every case against the backend.
func Run(t *testing.T, backend Backend) {
	cases := []struct {
		name string
		run  func(t *testing.T, l Limiter, c *Clock)
	}{
		{"BurstThenRefused", burstThenRefused},
		{"Refill", refill},
		{"KeysAreIndependent", keysAreIndependent},
		{"AllOrNothing", allOrNothing},
		{"RetryAfterIsTheLongestWait", retryAfterIsTheLongestWait},
		{"ExactMicroseconds", exactMicroseconds},
		{"SlowRate", slowRate},
		{"BurstOfAtLeastOne", burstOfAtLeastOne},
		{"ConcurrentSpendersShareTheBudget", concurrentSpenders},
		{"IdleBudgetIsWhole", idleBudgetIsWhole},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := NewClock()
			tc.run(t, backend(t, c.Now), c)
		})
	}
}

func allow(t *testing.T, l Limiter, checks ...ratelimit.Check) ratelimit.Decision {
	t.Helper()
	d, err := l.Allow(context.Background(), checks...)
	if err != nil {
		t.Fatalf("Allow: %v", err)
	}
	if len(d.States) != len(checks) {
		t.Fatalf("%d states for %d checks", len(d.States), len(checks))
	}
	return d
}

func want(t *testing.T, what string, d ratelimit.Decision, allowed bool, retry time.Duration, states ...ratelimit.State) {
	t.Helper()
	if d.Allowed != allowed || d.RetryAfter != retry {
		t.Errorf("%s: allowed %v retry %v, want %v %v", what, d.Allowed, d.RetryAfter, allowed, retry)
	}
	for i, s := range states {
		if d.States[i] != s {
			t.Errorf("%s: state %d is %+v, want %+v", what, i, d.States[i], s)
		}
	}
}

const ms = time.Millisecond

// 10/s with a burst of 3: three pass at once, each leaving one less and
// the budget 100ms further from whole; the fourth waits 100ms.
func burstThenRefused(t *testing.T, l Limiter, _ *Clock) {
	c := ratelimit.Check{Key: "burst", Limit: ratelimit.Limit{Rate: 10, Burst: 3}}
	for i := range 3 {
		want(t, "request", allow(t, l, c), true, 0, ratelimit.State{Remaining: 2 - i, Reset: time.Duration(i+1) * 100 * ms})
	}
	want(t, "fourth", allow(t, l, c), false, 100*ms, ratelimit.State{Remaining: 0, Reset: 300 * ms})
	// Refused requests spend nothing: the next refusal says the same.
	want(t, "fifth", allow(t, l, c), false, 100*ms, ratelimit.State{Remaining: 0, Reset: 300 * ms})
}

func refill(t *testing.T, l Limiter, clk *Clock) {
	c := ratelimit.Check{Key: "refill", Limit: ratelimit.Limit{Rate: 10, Burst: 2}}
	allow(t, l, c)
	allow(t, l, c)
	clk.Advance(40 * ms)
	want(t, "before the interval", allow(t, l, c), false, 60*ms, ratelimit.State{Remaining: 0, Reset: 160 * ms})
	clk.Advance(60 * ms)
	want(t, "after one interval", allow(t, l, c), true, 0, ratelimit.State{Remaining: 0, Reset: 200 * ms})
	clk.Advance(time.Hour)
	want(t, "long after", allow(t, l, c), true, 0, ratelimit.State{Remaining: 1, Reset: 100 * ms})
}

func keysAreIndependent(t *testing.T, l Limiter, _ *Clock) {
	lim := ratelimit.Limit{Rate: 1, Burst: 1}
	a, b := ratelimit.Check{Key: "user:a", Limit: lim}, ratelimit.Check{Key: "user:b", Limit: lim}
	allow(t, l, a)
	if d := allow(t, l, a); d.Allowed {
		t.Error("a's second request passed a burst of 1")
	}
	if d := allow(t, l, b); !d.Allowed {
		t.Error("b refused for a's spending")
	}
}

// A request refused by one budget costs the others nothing.
func allOrNothing(t *testing.T, l Limiter, _ *Clock) {
	tight := ratelimit.Check{Key: "aon:tight", Limit: ratelimit.Limit{Rate: 10, Burst: 1}}
	loose := ratelimit.Check{Key: "aon:loose", Limit: ratelimit.Limit{Rate: 10, Burst: 5}}
	want(t, "first", allow(t, l, tight, loose), true, 0,
		ratelimit.State{Remaining: 0, Reset: 100 * ms}, ratelimit.State{Remaining: 4, Reset: 100 * ms})
	want(t, "second", allow(t, l, tight, loose), false, 100*ms,
		ratelimit.State{Remaining: 0, Reset: 100 * ms}, ratelimit.State{Remaining: 4, Reset: 100 * ms})
	want(t, "loose alone", allow(t, l, loose), true, 0, ratelimit.State{Remaining: 3, Reset: 200 * ms})
}

func retryAfterIsTheLongestWait(t *testing.T, l Limiter, _ *Clock) {
	fast := ratelimit.Check{Key: "wait:fast", Limit: ratelimit.Limit{Rate: 100, Burst: 1}}
	slow := ratelimit.Check{Key: "wait:slow", Limit: ratelimit.Limit{Rate: 2, Burst: 1}}
	allow(t, l, fast, slow)
	want(t, "both empty", allow(t, l, fast, slow), false, 500*ms)
}

// 3/s is an interval of 333333µs: one microsecond short is refused with a
// retry of one microsecond, on every backend.
func exactMicroseconds(t *testing.T, l Limiter, clk *Clock) {
	c := ratelimit.Check{Key: "exact", Limit: ratelimit.Limit{Rate: 3, Burst: 1}}
	allow(t, l, c)
	clk.Advance(333332 * time.Microsecond)
	want(t, "1µs early", allow(t, l, c), false, time.Microsecond)
	clk.Advance(time.Microsecond)
	want(t, "on time", allow(t, l, c), true, 0, ratelimit.State{Remaining: 0, Reset: 333333 * time.Microsecond})
}

func slowRate(t *testing.T, l Limiter, _ *Clock) {
	c := ratelimit.Check{Key: "slow", Limit: ratelimit.Limit{Rate: 1.0 / 60, Burst: 2}}
	allow(t, l, c)
	allow(t, l, c)
	want(t, "third in a minute", allow(t, l, c), false, time.Minute, ratelimit.State{Remaining: 0, Reset: 2 * time.Minute})
}

func burstOfAtLeastOne(t *testing.T, l Limiter, _ *Clock) {
	c := ratelimit.Check{Key: "zero-burst", Limit: ratelimit.Limit{Rate: 10}}
	want(t, "first", allow(t, l, c), true, 0, ratelimit.State{Remaining: 0, Reset: 100 * ms})
	want(t, "second", allow(t, l, c), false, 100*ms)
}

// Many spenders at one instant: exactly the burst passes.
func concurrentSpenders(t *testing.T, l Limiter, _ *Clock) {
	c := ratelimit.Check{Key: "concurrent", Limit: ratelimit.Limit{Rate: 1, Burst: 37}}
	var passed atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 8 {
				d, err := l.Allow(context.Background(), c)
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					passed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if passed.Load() != 37 {
		t.Errorf("%d of 128 passed a burst of 37", passed.Load())
	}
}

// A budget left alone long enough is whole, whatever was spent before
// (backends may forget it; they must not forget it early).
func idleBudgetIsWhole(t *testing.T, l Limiter, clk *Clock) {
	c := ratelimit.Check{Key: "idle", Limit: ratelimit.Limit{Rate: 10, Burst: 4}}
	for range 4 {
		allow(t, l, c)
	}
	clk.Advance(399 * ms)
	want(t, "almost whole", allow(t, l, c), true, 0, ratelimit.State{Remaining: 2, Reset: 101 * ms})
	clk.Advance(2 * time.Minute)
	want(t, "whole", allow(t, l, c), true, 0, ratelimit.State{Remaining: 3, Reset: 100 * ms})
}

// Bench measures one request's decision as the edge makes it: an identity
// budget and an address budget, over 10 000 clients.
func Bench(b *testing.B, l Limiter) {
	lim := ratelimit.Limit{Rate: 1e6, Burst: 1 << 20}
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			k := fmt.Sprint(i % 10000)
			if _, err := l.Allow(context.Background(), ratelimit.Check{Key: "id:bench:" + k, Limit: lim}, ratelimit.Check{Key: "ip:bench:" + k, Limit: lim}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
