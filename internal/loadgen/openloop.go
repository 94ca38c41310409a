package loadgen

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"net/http"
	"path"
	"slices"
	"sync"
	"time"
)

// Arrivals is one open-loop run: requests arrive at a constant rate
// whatever the server does, the way customers' phones would. A request
// whose arrival finds MaxInFlight requests still unanswered is not sent
// and counted as missed, so a server that slows down shows up as missed
// arrivals and as latency (measured from the scheduled arrival, not from
// the send), never as a quietly lower rate.
type Arrivals struct {
	Client   *http.Client
	URL      string   // POST target, e.g. http://127.0.0.1:8080/v1/requests
	Tokens   []string // used round-robin by arrival number
	Rate     float64  // arrivals per second
	Duration time.Duration
	// MaxInFlight bounds the requests awaiting an answer (and so the
	// connections).
	MaxInFlight int
	Insurers    []string
	Area        *Area // nil: all of Turkey (RandomSubmission)
	Seed        int64
	// SampleEvery, when positive, records the id of every SampleEvery-th
	// arrival that was accepted (from its Location header), for a look at
	// what became of those requests afterwards.
	SampleEvery int

	// scheduled, if set, is called once every arrival has been sent or
	// missed (tests release a stalled server with it).
	scheduled func()
}

// ArrivalsResult is what an Arrivals run saw.
type ArrivalsResult struct {
	// Scheduled = Sent + Missed.
	Scheduled, Sent, Missed, Accepted int
	Statuses                          map[int]int // non-202 answers by status; transport errors under 0
	// Latency from the scheduled arrival to the answer, over every request
	// that got an HTTP answer.
	P50, P90, P99, Max time.Duration
	// Late is the most the generator itself sent behind schedule (a
	// starved CPU); it is part of the latencies above.
	Late    time.Duration
	Elapsed time.Duration // first arrival to the last answer
	Sampled []string      // ids of the sampled accepted requests
}

// Failed is every arrival that did not end in a 202: missed, refused or
// lost.
func (r ArrivalsResult) Failed() int { return r.Scheduled - r.Accepted }

// AcceptedPerSec is the accepted rate over Elapsed.
func (r ArrivalsResult) AcceptedPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Accepted) / r.Elapsed.Seconds()
}

func (a Arrivals) check() error {
	switch {
	case a.Client == nil || a.URL == "":
		return errors.New("arrivals: need a client and a URL")
	case !(a.Rate > 0) || math.IsInf(a.Rate, 0):
		return errors.New("arrivals: rate must be positive")
	case a.Duration <= 0:
		return errors.New("arrivals: duration must be positive")
	case a.MaxInFlight < 1:
		return errors.New("arrivals: max in flight must be at least 1")
	case len(a.Tokens) == 0:
		return errors.New("arrivals: need a token")
	}
	return nil
}

// Run sends the arrivals and waits for the last answer. If ctx ends first
// it stops scheduling and returns what it saw along with ctx's error.
func (a Arrivals) Run(ctx context.Context) (ArrivalsResult, error) {
	if err := a.check(); err != nil {
		return ArrivalsResult{}, err
	}
	var (
		mu       sync.Mutex
		res      = ArrivalsResult{Statuses: map[int]int{}}
		lat      = make([]time.Duration, 0, int(a.Rate*a.Duration.Seconds())+1)
		lastDone time.Time
		wg       sync.WaitGroup
	)
	done := func(status int, err error, at, end time.Time, loc string, sampled bool) {
		mu.Lock()
		defer mu.Unlock()
		if end.After(lastDone) {
			lastDone = end
		}
		switch {
		case err != nil:
			res.Statuses[0]++
			return
		case status == http.StatusAccepted:
			res.Accepted++
			if sampled && loc != "" {
				res.Sampled = append(res.Sampled, path.Base(loc))
			}
		default:
			res.Statuses[status]++
		}
		lat = append(lat, end.Sub(at))
	}

	inFlight := make(chan struct{}, a.MaxInFlight)
	interval := float64(time.Second) / a.Rate
	n := int64(a.Rate * a.Duration.Seconds())
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
schedule:
	for i := range n {
		// Arrival times derive from the arrival number, so a late wake-up
		// never pushes the schedule back: the arrivals that fell due
		// meanwhile go out at once.
		at := start.Add(time.Duration(float64(i) * interval))
		if d := time.Until(at); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				break schedule
			case <-timer.C:
			}
		} else if -d > res.Late {
			res.Late = -d
		}
		res.Scheduled++
		select {
		case inFlight <- struct{}{}:
		default:
			res.Missed++
			continue
		}
		res.Sent++
		tok := a.Tokens[int(i)%len(a.Tokens)]
		sampled := a.SampleEvery > 0 && i%int64(a.SampleEvery) == 0
		wg.Go(func() {
			defer func() { <-inFlight }()
			// One generator per arrival, seeded by its number: the same
			// seed sends the same bodies whatever the timing.
			r := rand.New(rand.NewPCG(uint64(a.Seed), uint64(i)))
			var s Submission
			if a.Area != nil {
				s = RandomSubmissionIn(r, a.Insurers, *a.Area)
			} else {
				s = RandomSubmission(r, a.Insurers)
			}
			status, loc, err := submit(ctx, a.Client, a.URL, tok, s)
			if ctx.Err() != nil {
				return // cut short: says nothing about the server
			}
			done(status, err, at, time.Now(), loc, sampled)
		})
	}
	if a.scheduled != nil {
		a.scheduled()
	}
	wg.Wait()

	if lastDone.IsZero() {
		lastDone = time.Now()
	}
	res.Elapsed = lastDone.Sub(start)
	slices.Sort(lat)
	res.P50, res.P90, res.P99 = percentile(lat, 0.50), percentile(lat, 0.90), percentile(lat, 0.99)
	if len(lat) > 0 {
		res.Max = lat[len(lat)-1]
	}
	return res, ctx.Err()
}
