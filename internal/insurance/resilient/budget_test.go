package resilient

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	base, maxDelay := 100*time.Millisecond, 2*time.Second
	caps := []time.Duration{100, 200, 400, 800, 1600, 2000, 2000, 2000}
	top := func(n int64) int64 { return n - 1 }
	bottom := func(int64) int64 { return 0 }
	r := rand.New(rand.NewPCG(1, 2))
	for n, c := range caps {
		c *= time.Millisecond
		if got := backoff(n, base, maxDelay, top); got != c {
			t.Errorf("backoff(%d) with the top draw = %s, want the cap %s", n, got, c)
		}
		if got := backoff(n, base, maxDelay, bottom); got != 0 {
			t.Errorf("backoff(%d) with the bottom draw = %s, want 0", n, got)
		}
		for range 1000 {
			if got := backoff(n, base, maxDelay, r.Int64N); got < 0 || got > c {
				t.Fatalf("backoff(%d) = %s, outside [0, %s]", n, got, c)
			}
		}
	}
	// No overflow however many retries.
	if got := backoff(200, base, maxDelay, top); got != maxDelay {
		t.Errorf("backoff(200) = %s, want %s", got, maxDelay)
	}
}

func TestRetryBudget(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	b := newRetryBudget(0.2, func() time.Time { return now })

	spend := func() (n int) {
		for b.retry() {
			n++
		}
		return n
	}
	// No calls yet: the floor only.
	if got := spend(); got != budgetFloor {
		t.Fatalf("retries with no calls = %d, want the floor %d", got, budgetFloor)
	}
	// 100 calls earn 20 more.
	for range 100 {
		b.call()
	}
	if got := spend(); got != 20 {
		t.Fatalf("retries after 100 calls = %d, want 20", got)
	}
	// Half a window later, still spent.
	now = now.Add(budgetWindow / 2)
	if got := spend(); got != 0 {
		t.Fatalf("retries half a window later = %d, want 0", got)
	}
	// A full window after the spending, it is all forgotten.
	now = now.Add(budgetWindow / 2)
	if got := spend(); got != budgetFloor {
		t.Fatalf("retries a window later = %d, want the floor %d", got, budgetFloor)
	}
	// A clock before 1970 must not break the ring.
	b = newRetryBudget(0.2, func() time.Time { return time.Unix(-12345, 0) })
	b.call()
	b.retry()
}

func TestRecentCalls(t *testing.T) {
	t.Parallel()
	var r recentCalls
	if n, e, p50, p99 := r.summary(); n != 0 || e != 0 || p50 != 0 || p99 != 0 {
		t.Fatal("empty summary not zero")
	}
	// 1..100ms, every 4th failed: p50 50ms, p99 99ms, error rate 0.25.
	for i := 1; i <= 100; i++ {
		r.add(time.Duration(i)*time.Millisecond, i%4 == 0)
	}
	if n, e, p50, p99 := r.summary(); n != 100 || e != 0.25 || p50 != 50*time.Millisecond || p99 != 99*time.Millisecond {
		t.Errorf("summary = %d, %v, %s, %s", n, e, p50, p99)
	}
	// Only the last recentSize count.
	for range recentSize {
		r.add(time.Second, false)
	}
	if n, e, p50, p99 := r.summary(); n != recentSize || e != 0 || p50 != time.Second || p99 != time.Second {
		t.Errorf("summary after wrapping = %d, %v, %s, %s", n, e, p50, p99)
	}
}
