package resilient

import (
	"sync"
	"time"
)

// backoff is the sleep before retry n (0 for the first retry): "full
// jitter", uniformly random in [0, min(maxDelay, base*2^n)]. randN returns a
// number in [0, n).
func backoff(n int, base, maxDelay time.Duration, randN func(int64) int64) time.Duration {
	ceiling := base
	for i := 0; i < n && ceiling < maxDelay; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, maxDelay)
	if ceiling <= 0 {
		return 0
	}
	return time.Duration(randN(int64(ceiling) + 1))
}

// Retry budget window: retries are allowed while, over the last
// budgetWindow, retries < budgetFloor + ratio*calls.
const (
	budgetBuckets = 10
	budgetBucket  = time.Second
	budgetWindow  = budgetBuckets * budgetBucket
	// budgetFloor lets a quiet insurer retry at all (0.2 of 1 call is no
	// retry); it is per window, so at most one retry a second beyond the ratio.
	budgetFloor = 10
)

// retryBudget caps retries to a fraction of calls over a sliding window, so
// a total outage can never multiply the load on an insurer by the number of
// attempts. Safe for concurrent use.
type retryBudget struct {
	ratio float64
	now   func() time.Time

	mu      sync.Mutex
	buckets [budgetBuckets]struct {
		epoch          int64 // which budgetBucket-long slice of time it counts
		calls, retries int
	}
}

func newRetryBudget(ratio float64, now func() time.Time) *retryBudget {
	return &retryBudget{ratio: ratio, now: now}
}

// bucket returns the current bucket, reset if it held an older slice.
func (b *retryBudget) bucket() (epoch int64, i int) {
	epoch = b.now().UnixNano() / int64(budgetBucket)
	i = int((epoch%budgetBuckets + budgetBuckets) % budgetBuckets) // clocks before 1970 too
	if b.buckets[i].epoch != epoch {
		b.buckets[i].epoch, b.buckets[i].calls, b.buckets[i].retries = epoch, 0, 0
	}
	return epoch, i
}

// call records a call (a Verify that will make at least one attempt).
func (b *retryBudget) call() {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, i := b.bucket()
	b.buckets[i].calls++
}

// retry reports whether one more retry fits the budget, and if so spends it.
func (b *retryBudget) retry() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	epoch, i := b.bucket()
	calls, retries := 0, 0
	for _, bk := range b.buckets {
		if bk.epoch > epoch-budgetBuckets {
			calls += bk.calls
			retries += bk.retries
		}
	}
	if float64(retries) >= budgetFloor+b.ratio*float64(calls) {
		return false
	}
	b.buckets[i].retries++
	return true
}
