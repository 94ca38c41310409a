package httpapi

import (
	"sync"
	"time"
)

// Limiter decides whether one more request from key may pass now, and if
// not, how long to wait. The in-process TokenBuckets is the embedded
// default; a Redis limiter shares limits across processes.
type Limiter interface {
	Allow(key string) (ok bool, retryAfter time.Duration)
}

// TokenBuckets is a token-bucket limiter per key, held in memory. Idle
// buckets are forgotten so that the map cannot grow without bound.
type TokenBuckets struct {
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewTokenBuckets allows rate requests a second per key with bursts of
// burst. A rate of zero or less allows everything.
func NewTokenBuckets(rate float64, burst int, now func() time.Time) *TokenBuckets {
	if now == nil {
		now = time.Now
	}
	return &TokenBuckets{rate: rate, burst: float64(max(burst, 1)), now: now, buckets: map[string]*bucket{}}
}

// Allow implements Limiter.
func (l *TokenBuckets) Allow(key string) (bool, time.Duration) {
	if l.rate <= 0 {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		l.sweep(now)
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// sweep drops buckets that have refilled completely: forgetting them
// changes nothing.
func (l *TokenBuckets) sweep(now time.Time) {
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	for k, b := range l.buckets {
		if now.Sub(b.last) > full {
			delete(l.buckets, k)
		}
	}
	l.swept = now
}
