package sim

import (
	"math"
	"sync/atomic"
	"time"
)

// histogram counts durations in logarithmic buckets (5% wide, from 10 µs
// to about 17 minutes): constant memory however many samples, quantiles
// within 5%, and safe for concurrent Observe without a lock.
type histogram struct {
	counts [histBuckets]atomic.Int64
	n      atomic.Int64
	max    atomic.Int64
}

const (
	histMin     = 10 * time.Microsecond
	histRatio   = 1.05
	histBuckets = 380
)

var logRatio = math.Log(histRatio)

func (h *histogram) Observe(d time.Duration) {
	i := 0
	if d > histMin {
		i = int(math.Log(float64(d)/float64(histMin))/logRatio) + 1
	}
	h.counts[min(i, histBuckets-1)].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			break
		}
	}
}

// Count is how many samples were observed.
func (h *histogram) Count() int64 { return h.n.Load() }

// Quantile returns the upper bound of the bucket holding the q-th sample
// (0 when there are none).
func (h *histogram) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(n)))
	var seen int64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			if i == 0 {
				return histMin
			}
			return min(time.Duration(float64(histMin)*math.Pow(histRatio, float64(i))), time.Duration(h.max.Load()))
		}
	}
	return time.Duration(h.max.Load())
}

// Summary is a histogram's count and quantiles, for the report.
type Summary struct {
	Count int64         `json:"count"`
	P50   time.Duration `json:"p50_ns"`
	P99   time.Duration `json:"p99_ns"`
	Max   time.Duration `json:"max_ns"`
}

func (h *histogram) Summary() Summary {
	return Summary{Count: h.Count(), P50: h.Quantile(0.5), P99: h.Quantile(0.99), Max: time.Duration(h.max.Load())}
}
