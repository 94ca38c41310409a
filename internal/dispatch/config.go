package dispatch

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/yolda/yolda/internal/fleet"
)

// Config is how dispatch searches and how long it waits. The zero value
// of a field takes its default (Defaults).
type Config struct {
	// OfferTimeout is how long a driver has to accept an offer.
	OfferTimeout time.Duration
	// RadiiKm are the rounds: the k-th offer of a request goes to a driver
	// within RadiiKm[k]. A round whose radius holds no free driver is
	// skipped at once; after the last round the request is unfulfilled.
	RadiiKm []float64
	// Wait is how long a request with no free driver within the widest
	// radius waits (looked at again every RetryEvery) before it is
	// unfulfilled.
	Wait       time.Duration
	RetryEvery time.Duration
	// BatchThreshold: when more requests of one batch compete for the same
	// drivers than this, they are matched together (minimum total ETA,
	// matching.Optimal) instead of nearest-first one by one
	// (matching.Greedy). 0 takes the default; a negative value turns batch
	// matching off.
	BatchThreshold int
	// Candidates is how many nearby drivers are considered per request.
	Candidates int
}

// Defaults are the embedded defaults (docs/operations.md).
func Defaults() Config {
	return Config{
		OfferTimeout:   30 * time.Second,
		RadiiKm:        []float64{5, 10, 20, 40},
		Wait:           time.Minute,
		RetryEvery:     2 * time.Second,
		BatchThreshold: 8,
		Candidates:     16,
	}
}

// withDefaults fills the zero fields.
func (c Config) withDefaults() Config {
	d := Defaults()
	if c.OfferTimeout == 0 {
		c.OfferTimeout = d.OfferTimeout
	}
	if len(c.RadiiKm) == 0 {
		c.RadiiKm = d.RadiiKm
	}
	if c.Wait == 0 {
		c.Wait = d.Wait
	}
	if c.RetryEvery == 0 {
		c.RetryEvery = d.RetryEvery
	}
	if c.BatchThreshold == 0 {
		c.BatchThreshold = d.BatchThreshold
	}
	if c.Candidates == 0 {
		c.Candidates = d.Candidates
	}
	return c
}

// Validate checks a config after defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.OfferTimeout < time.Second || c.OfferTimeout > time.Hour {
		errs = append(errs, errors.New("offer timeout must be between 1s and 1h"))
	}
	if len(c.RadiiKm) > 16 {
		errs = append(errs, errors.New("at most 16 dispatch rounds"))
	}
	for i, r := range c.RadiiKm {
		if !(r > 0) || r > 1000 {
			errs = append(errs, fmt.Errorf("dispatch radius %v km: want (0, 1000]", r))
		}
		if i > 0 && r < c.RadiiKm[i-1] {
			errs = append(errs, errors.New("dispatch radii must not shrink"))
		}
	}
	if c.Wait < 0 || c.RetryEvery < 10*time.Millisecond {
		errs = append(errs, errors.New("dispatch wait must not be negative, retry at least 10ms"))
	}
	if c.Candidates < 1 || c.Candidates > fleet.MaxNearbyLimit {
		errs = append(errs, errors.New("dispatch candidates must be 1-1000"))
	}
	return errors.Join(errs...)
}

func (c Config) widest() float64 { return slices.Max(c.RadiiKm) }

// roundFor is the round an offer to a driver at distanceKm takes when the
// request's next round is next: the first round from next on whose radius
// reaches the driver, or -1 if none does.
func (c Config) roundFor(next int, distanceKm float64) int {
	for k := next; k < len(c.RadiiKm); k++ {
		if distanceKm <= c.RadiiKm[k] {
			return k
		}
	}
	return -1
}
