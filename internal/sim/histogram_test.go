package sim

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestHistogramQuantiles: quantiles are within a bucket (5%) of the exact
// ones, over a spread of magnitudes.
func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	rng := rand.New(rand.NewPCG(1, 2))
	var all []time.Duration
	for range 20000 {
		d := time.Duration(rng.ExpFloat64() * float64(3*time.Millisecond))
		all = append(all, d)
		h.Observe(d)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.99} {
		exact := all[int(q*float64(len(all)))-1]
		got := h.Quantile(q)
		if lo, hi := float64(exact)*0.95, float64(exact)*1.06; float64(got) < lo || float64(got) > hi {
			t.Errorf("q%.2f = %v, exact %v", q, got, exact)
		}
	}
	if h.Count() != 20000 || time.Duration(h.max.Load()) != all[len(all)-1] {
		t.Errorf("count %d, max %v", h.Count(), time.Duration(h.max.Load()))
	}
}

// TestBayramProfile: the rate ramps from a fifth of the peak to the peak
// at mid-run and back; steady stays put.
func TestBayramProfile(t *testing.T) {
	o := Options{Profile: Bayram, Rate: 10, Duration: 100 * time.Second}
	for _, tc := range []struct {
		at   time.Duration
		want float64
	}{{0, 2}, {50 * time.Second, 10}, {100 * time.Second, 2}} {
		if got := o.rateAt(tc.at); got < tc.want-0.01 || got > tc.want+0.01 {
			t.Errorf("bayram at %v: %.2f/s, want %.2f", tc.at, got, tc.want)
		}
	}
	if got := o.rateAt(25 * time.Second); got <= 2 || got >= 10 {
		t.Errorf("bayram on the ramp: %.2f/s", got)
	}
	o.Profile = Steady
	if got := o.rateAt(50 * time.Second); got != 10 {
		t.Errorf("steady: %.2f/s", got)
	}
}
