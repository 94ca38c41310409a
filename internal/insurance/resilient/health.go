package resilient

import (
	"encoding/json"
	"math"
	"slices"
	"sync"
	"time"
)

// Health is an insurer's state for operators (GET /v1/insurers). Calls are
// attempts sent to the insurer; the error rate and latencies cover the last
// recentSize of them.
type Health struct {
	Code, Name string
	// Breaker is "closed", "open" or "half-open".
	Breaker string
	// Calls and Errors count attempts since start.
	Calls, Errors uint64
	// Recent is how many attempts ErrorRate and the latencies summarise
	// (the last recentSize at most): their weight when the health of
	// several processes is merged.
	Recent int
	// ErrorRate is the share of failed attempts among recent ones.
	ErrorRate  float64
	LatencyP50 time.Duration
	LatencyP99 time.Duration
	// InFlight is Verify calls in progress (bulkhead slots held).
	InFlight int
}

// MarshalJSON renders h with snake_case names and latencies in milliseconds.
func (h Health) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Code       string  `json:"code"`
		Name       string  `json:"name"`
		Breaker    string  `json:"breaker"`
		Calls      uint64  `json:"calls"`
		Errors     uint64  `json:"errors"`
		ErrorRate  float64 `json:"error_rate"`
		LatencyP50 float64 `json:"latency_p50_ms"`
		LatencyP99 float64 `json:"latency_p99_ms"`
		InFlight   int     `json:"in_flight"`
	}{h.Code, h.Name, h.Breaker, h.Calls, h.Errors, h.ErrorRate,
		float64(h.LatencyP50) / float64(time.Millisecond), float64(h.LatencyP99) / float64(time.Millisecond), h.InFlight})
}

// Health reports the insurer's state now. (Looking at the breaker also moves
// an open breaker past its open_for to half-open.)
func (c *Client) Health() Health {
	h := Health{
		Code:     c.cfg.Code,
		Name:     c.cfg.Name,
		Breaker:  c.breaker.current().String(),
		Calls:    c.calls.Load(),
		Errors:   c.errs.Load(),
		InFlight: int(c.inFlight.Load()),
	}
	h.Recent, h.ErrorRate, h.LatencyP50, h.LatencyP99 = c.recent.summary()
	return h
}

// recentSize is how many recent attempts Health summarises.
const recentSize = 256

// recentCalls is a ring of the last recentSize attempts.
type recentCalls struct {
	mu     sync.Mutex
	took   [recentSize]time.Duration
	failed [recentSize]bool
	n      int // attempts recorded, ever
}

func (r *recentCalls) add(took time.Duration, failed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := r.n % recentSize
	r.took[i], r.failed[i] = took, failed
	r.n++
}

// summary returns how many recent attempts there are, their error rate and
// their 50th and 99th percentile latency (nearest rank); zeros if there
// were none.
func (r *recentCalls) summary() (n int, errorRate float64, p50, p99 time.Duration) {
	r.mu.Lock()
	n = min(r.n, recentSize)
	took := slices.Clone(r.took[:n])
	failed := 0
	for _, f := range r.failed[:n] {
		if f {
			failed++
		}
	}
	r.mu.Unlock()
	if n == 0 {
		return 0, 0, 0, 0
	}
	slices.Sort(took)
	rank := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(n)-1e-9)) - 1 // nearest rank, despite 0.99*100 = 99.00000000000001
		return took[max(0, min(n-1, i))]
	}
	return n, float64(failed) / float64(n), rank(0.50), rank(0.99)
}
