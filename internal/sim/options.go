// Package sim is the fleet simulator behind `yolda sim` and `yolda demo`:
// it drives a running Yolda over its public HTTP API and WebSocket as a
// city's drivers and customers would, and measures what they see.
//
// Drivers move plausibly inside a bounding box (Istanbul's by default),
// report their positions over the WebSocket, go online and offline, take
// the offers made to them with some probability after some delay, and
// walk their jobs to completion. Customers ask for help at the rate of a
// profile (steady, or bayram: a ramp to a peak and back) and follow their
// requests over the WebSocket. The report counts what happened to the
// requests, times offers and assignments, and measures the position
// fan-out latency from a driver's send to a customer's receipt.
//
// It is a client only: accounts must exist (AccountNames says which;
// `yolda sim --setup` creates them in the store), and it knows nothing of
// Yolda's internals.
package sim

import (
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// Profile is how the request rate moves over the run.
type Profile string

const (
	// Steady: Rate requests per second throughout.
	Steady Profile = "steady"
	// Bayram: a holiday rush; from a fifth of Rate up to Rate at mid-run
	// and back down.
	Bayram Profile = "bayram"
)

// Box is a bounding box of latitude and longitude.
type Box struct {
	MinLat, MinLng, MaxLat, MaxLng float64
}

// Istanbul is the default city: from Beylikdüzü to Tuzla, the Bosphorus
// in the middle.
var Istanbul = Box{MinLat: 40.85, MinLng: 28.60, MaxLat: 41.20, MaxLng: 29.35}

// Options describe a run. Zero fields take the defaults.
type Options struct {
	// BaseURL is the Yolda API, e.g. http://127.0.0.1:8080.
	BaseURL string
	// Drivers, Customers and Operators are how many of each connect.
	// Operators receive every driver's positions (a panel watching the
	// whole fleet).
	Drivers, Customers, Operators int
	// Prefix heads the simulated accounts' usernames (default "sim-");
	// Password is all of theirs (default "sim-password").
	Prefix, Password string
	// Duration is how long requests are created (default 1m); then the
	// run waits up to Drain (default 1m) for open requests to end.
	Duration, Drain time.Duration
	// Profile and Rate: requests per second, at the peak for bayram
	// (default steady, 1/s).
	Profile Profile
	Rate    float64
	// AcceptProbability is the chance a driver takes an offer (default
	// 0.9), AcceptDelay how long it looks at it first (default 2s).
	AcceptProbability float64
	AcceptDelay       time.Duration
	// PositionEvery is how often a driver reports its position (default
	// 1s).
	PositionEvery time.Duration
	// SpeedKmh is how fast drivers drive (default 40); Speedup makes the
	// city's clock run faster than the wall's for movement and service
	// times (default 10: a 4 km drive takes 36 s).
	SpeedKmh float64
	Speedup  float64
	// ServiceTime is how long a job takes on site, in city time (default
	// 10m).
	ServiceTime time.Duration
	// OfflineShare is the share of free drivers that go offline for a
	// while every city hour (default 0.1).
	OfflineShare float64
	// Box is the city (default Istanbul).
	Box Box
	// Insurers are the policy insurers customers name (default anadolu).
	Insurers []string
	// LocalAddrs spreads the client sockets over these local addresses
	// (127.0.0.2, ...), to get past one address's ephemeral ports.
	LocalAddrs []string
	// ConnectRate caps new WebSocket connections per second (default 500).
	ConnectRate float64
	// Seed makes a run's randomness repeatable (0: random).
	Seed uint64
	// Progress, if set, gets a live progress line every ProgressEvery
	// (default 1s); the line is rewritten in place unless ProgressLines.
	Progress      io.Writer
	ProgressEvery time.Duration
	ProgressLines bool
}

// WithDefaults is o with its zero fields set to the defaults.
func (o Options) WithDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = "sim-"
	}
	if o.Password == "" {
		o.Password = "sim-password"
	}
	dur := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	dur(&o.Duration, time.Minute)
	dur(&o.Drain, time.Minute)
	dur(&o.AcceptDelay, 2*time.Second)
	dur(&o.PositionEvery, time.Second)
	dur(&o.ServiceTime, 10*time.Minute)
	dur(&o.ProgressEvery, time.Second)
	num := func(f *float64, v float64) {
		if *f <= 0 {
			*f = v
		}
	}
	num(&o.Rate, 1)
	num(&o.SpeedKmh, 40)
	num(&o.Speedup, 10)
	num(&o.ConnectRate, 500)
	if o.AcceptProbability == 0 {
		o.AcceptProbability = 0.9
	}
	if o.OfflineShare == 0 {
		o.OfflineShare = 0.1
	}
	if o.Profile == "" {
		o.Profile = Steady
	}
	if o.Box == (Box{}) {
		o.Box = Istanbul
	}
	if len(o.Insurers) == 0 {
		o.Insurers = []string{"anadolu"}
	}
	return o
}

// Validate reports options a run cannot use.
func (o Options) Validate() error {
	o = o.WithDefaults()
	var errs []error
	if o.BaseURL == "" {
		errs = append(errs, errors.New("the server's URL is required"))
	}
	if o.Drivers < 0 || o.Customers < 0 || o.Operators < 0 || o.Drivers+o.Customers+o.Operators == 0 {
		errs = append(errs, errors.New("drivers, customers and operators must not be negative, and not all zero"))
	}
	if o.Profile != Steady && o.Profile != Bayram {
		errs = append(errs, fmt.Errorf("profile %q: want steady or bayram", o.Profile))
	}
	if o.AcceptProbability < 0 || o.AcceptProbability > 1 {
		errs = append(errs, errors.New("accept probability must be in [0, 1]"))
	}
	if o.OfflineShare < 0 || o.OfflineShare > 1 {
		errs = append(errs, errors.New("offline share must be in [0, 1]"))
	}
	if !(o.Box.MinLat < o.Box.MaxLat && o.Box.MinLng < o.Box.MaxLng) || math.Abs(o.Box.MaxLat) > 85 || math.Abs(o.Box.MinLat) > 85 {
		errs = append(errs, errors.New("the box must have min below max, within ±85° of latitude"))
	}
	if o.SpeedKmh > 200 {
		errs = append(errs, errors.New("speed must be at most 200 km/h"))
	}
	return errors.Join(errs...)
}

// rateAt is the request rate at elapsed of a run of duration d.
func (o Options) rateAt(elapsed time.Duration) float64 {
	if o.Profile == Bayram {
		x := math.Sin(math.Pi * float64(elapsed) / float64(o.Duration))
		return o.Rate * (0.2 + 0.8*math.Max(0, x))
	}
	return o.Rate
}

// Account is one simulated account.
type Account struct {
	Username string
	Role     string
}

// AccountNames lists the accounts a run with these options logs in as:
// drivers, then customers, then operators.
func AccountNames(o Options) []Account {
	o = o.WithDefaults()
	var out []Account
	for i := range o.Drivers {
		out = append(out, Account{Username: fmt.Sprintf("%sd%05d", o.Prefix, i+1), Role: "driver"})
	}
	for i := range o.Customers {
		out = append(out, Account{Username: fmt.Sprintf("%sc%05d", o.Prefix, i+1), Role: "customer"})
	}
	for i := range o.Operators {
		out = append(out, Account{Username: fmt.Sprintf("%so%03d", o.Prefix, i+1), Role: "operator"})
	}
	return out
}
