package sim

import (
	"sync"
	"sync/atomic"
	"time"
)

// tracker is what the run knows of its requests: when each was created,
// first offered and assigned, and how it ended.
type tracker struct {
	mu       sync.Mutex
	requests map[string]*tracked

	created, assigned, completed, unfulfilled, rejected, cancelled atomic.Int64
	// skipped counts requests the profile asked for when every customer
	// already had one open.
	skipped atomic.Int64

	toOffer, toAssign      histogram
	fanout, fanoutOperator histogram

	positionsSent, positionsSeen, statusesSeen, offersSeen atomic.Int64
}

type tracked struct {
	created  time.Time
	offered  bool
	assigned bool
	final    bool
	customer *customer
}

func newTracker() *tracker { return &tracker{requests: map[string]*tracked{}} }

func (t *tracker) add(id string, at time.Time, c *customer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.requests[id] = &tracked{created: at, customer: c}
	t.created.Add(1)
}

// offered records an offer of a request seen by a driver (the first one
// times the request's wait for an offer).
func (t *tracker) offered(id string, at time.Time) {
	t.offersSeen.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.requests[id]; r != nil && !r.offered {
		r.offered = true
		t.toOffer.Observe(at.Sub(r.created))
	}
}

// status records a status its customer saw; it returns the request's
// customer when the request just ended (the customer is free again).
func (t *tracker) status(id, status string, at time.Time) *customer {
	t.statusesSeen.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.requests[id]
	if r == nil || r.final {
		return nil
	}
	switch status {
	case "assigned", "en_route", "arrived", "in_service", "completed":
		if !r.assigned {
			r.assigned = true
			t.assigned.Add(1)
			t.toAssign.Observe(at.Sub(r.created))
		}
	}
	var end *atomic.Int64
	switch status {
	case "completed":
		end = &t.completed
	case "unfulfilled":
		end = &t.unfulfilled
	case "rejected":
		end = &t.rejected
	case "cancelled":
		end = &t.cancelled
	default:
		return nil
	}
	end.Add(1)
	r.final = true
	return r.customer
}

// open is how many requests have not ended.
func (t *tracker) open() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, r := range t.requests {
		if !r.final {
			n++
		}
	}
	return n
}
