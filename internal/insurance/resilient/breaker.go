package resilient

import (
	"sync"
	"time"
)

// breakerState is where a circuit breaker stands.
type breakerState int

const (
	stateClosed breakerState = iota
	stateHalfOpen
	stateOpen
)

func (s breakerState) String() string {
	switch s {
	case stateHalfOpen:
		return "half-open"
	case stateOpen:
		return "open"
	}
	return "closed"
}

// value is the state as the yolda_insurer_breaker_state gauge reads it.
func (s breakerState) value() float64 { return float64(s) }

// breaker is a circuit breaker on an injected clock:
//
//   - closed: calls go through; failures in a row open it;
//   - open: calls are refused until openFor has passed, then it is
//     half-open (noticed on the next look: a call or a health check);
//   - half-open: up to probes calls go through at once; that many
//     successes in a row close it, one failure opens it again.
//
// A call's outcome counts only in the period (generation) it started in, so
// a slow call that started before the breaker opened cannot close it. An
// excluded outcome (the caller gave up) counts as nothing. Safe for
// concurrent use. onChange hears every transition, in order, with the
// breaker's lock held (transitions are rare): it must not call back.
type breaker struct {
	failures int
	openFor  time.Duration
	probes   int
	now      func() time.Time
	onChange func(from, to breakerState)

	mu          sync.Mutex
	state       breakerState
	generation  uint64
	consecutive int // failures while closed, successes while half-open
	inFlight    int // probes in flight while half-open
	openedAt    time.Time
}

func newBreaker(failures, probes int, openFor time.Duration, now func() time.Time, onChange func(from, to breakerState)) *breaker {
	return &breaker{failures: failures, openFor: openFor, probes: probes, now: now, onChange: onChange}
}

// outcome of a call, as the breaker counts it.
type outcome int

const (
	success outcome = iota
	failure
	excluded
)

// allow asks to make a call. If the breaker lets it through, done must be
// called with its outcome; otherwise allow returns false.
func (b *breaker) allow() (done func(outcome), ok bool) {
	b.mu.Lock()
	b.advance()
	defer b.mu.Unlock()
	switch b.state {
	case stateOpen:
		return nil, false
	case stateHalfOpen:
		if b.inFlight >= b.probes {
			return nil, false
		}
		b.inFlight++
	}
	gen, probe := b.generation, b.state == stateHalfOpen
	return func(o outcome) { b.done(gen, probe, o) }, true
}

func (b *breaker) done(gen uint64, probe bool, o outcome) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if probe && gen == b.generation {
		b.inFlight--
	}
	b.advance()
	if gen == b.generation && o != excluded {
		switch b.state {
		case stateClosed:
			if o == failure {
				b.consecutive++
				if b.consecutive >= b.failures {
					b.set(stateOpen)
				}
			} else {
				b.consecutive = 0
			}
		case stateHalfOpen:
			if o == failure {
				b.set(stateOpen)
			} else if b.consecutive++; b.consecutive >= b.probes {
				b.set(stateClosed)
			}
		}
	}
}

// current returns the state now, moving an open breaker past its openFor
// to half-open.
func (b *breaker) current() breakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advance()
	return b.state
}

// advance turns open into half-open once openFor has passed. b.mu is held.
func (b *breaker) advance() {
	if b.state == stateOpen && !b.now().Before(b.openedAt.Add(b.openFor)) {
		b.set(stateHalfOpen)
	}
}

// set moves to state s in a new generation. b.mu is held.
func (b *breaker) set(s breakerState) {
	from := b.state
	b.state, b.generation, b.consecutive, b.inFlight = s, b.generation+1, 0, 0
	if s == stateOpen {
		b.openedAt = b.now()
	}
	b.onChange(from, s)
}
