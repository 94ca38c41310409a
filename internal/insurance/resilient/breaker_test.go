package resilient

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

type testClock struct{ t time.Time }

func (c *testClock) now() time.Time { return c.t }

func newTestBreaker(failures, probes int) (*breaker, *testClock, *[]string) {
	clock := &testClock{t: time.Unix(1_800_000_000, 0)}
	var changes []string
	b := newBreaker(failures, probes, time.Minute, clock.now, func(from, to breakerState) {
		changes = append(changes, fmt.Sprintf("%s>%s", from, to))
	})
	return b, clock, &changes
}

func mustAllow(t *testing.T, b *breaker) func(outcome) {
	t.Helper()
	done, ok := b.allow()
	if !ok {
		t.Fatalf("call refused in state %s", b.current())
	}
	return done
}

// A call that started before the breaker opened says nothing about the
// insurer now: its outcome neither closes nor re-opens the breaker.
func TestBreakerIgnoresCallsOfAnEarlierPeriod(t *testing.T) {
	b, clock, changes := newTestBreaker(2, 1)
	slow := mustAllow(t, b)
	mustAllow(t, b)(failure)
	mustAllow(t, b)(failure)
	if b.current() != stateOpen {
		t.Fatalf("state %s after 2 failures", b.current())
	}
	slow(success) // started while closed: must not count
	if b.current() != stateOpen {
		t.Fatalf("a stale success moved the breaker to %s", b.current())
	}
	clock.t = clock.t.Add(time.Minute)
	probe := mustAllow(t, b)
	if _, ok := b.allow(); ok {
		t.Fatal("a second call went through while the only probe was in flight")
	}
	probe(success)
	if want := []string{"closed>open", "open>half-open", "half-open>closed"}; !slices.Equal(*changes, want) {
		t.Errorf("transitions %v, want %v", *changes, want)
	}
}

// Half-open lets `probes` calls through at once; that many successes close
// it, one failure opens it again; a call the caller abandoned frees its
// slot and counts as nothing.
func TestBreakerHalfOpen(t *testing.T) {
	b, clock, _ := newTestBreaker(1, 2)
	mustAllow(t, b)(failure)
	clock.t = clock.t.Add(time.Minute)
	p1, p2 := mustAllow(t, b), mustAllow(t, b)
	if _, ok := b.allow(); ok {
		t.Fatal("a third probe went through")
	}
	p1(excluded)
	p3 := mustAllow(t, b) // the abandoned probe's slot
	p2(success)
	if b.current() != stateHalfOpen {
		t.Fatalf("closed after one success of two: %s", b.current())
	}
	p3(success)
	if b.current() != stateClosed {
		t.Fatalf("state %s after two successes", b.current())
	}
	// Closed again: one failure (failures is 1) opens it; in half-open a
	// failure re-opens it at once.
	mustAllow(t, b)(failure)
	clock.t = clock.t.Add(time.Minute)
	mustAllow(t, b)(failure)
	if b.current() != stateOpen {
		t.Errorf("state %s after a failed probe", b.current())
	}
	// A success while closed resets the count of failures in a row.
	b2, _, _ := newTestBreaker(2, 1)
	mustAllow(t, b2)(failure)
	mustAllow(t, b2)(success)
	mustAllow(t, b2)(failure)
	if b2.current() != stateClosed {
		t.Errorf("failures not in a row opened the breaker")
	}
}
