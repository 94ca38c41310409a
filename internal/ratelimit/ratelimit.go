// Package ratelimit is the arithmetic of Yolda's rate limits and the
// contract of their backends. A limit is a budget (a rate and a burst)
// spent by key; every backend applies the same generic cell rate
// algorithm (GCRA) in integer microseconds, so that the in-process
// limiter and the Redis one (shared by every API process) answer alike to
// the microsecond. It is not for deciding which limit applies to which
// request: the edge (internal/httpapi) does that.
package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ErrUnavailable is what a shared backend answers when it cannot decide
// (its server does not answer). The caller then fails open or closed.
var ErrUnavailable = errors.New("rate limiter unavailable")

// Limit is a budget: Rate requests a second on average, in bursts of up
// to Burst. A Rate of zero or less is no limit.
type Limit struct {
	Rate  float64
	Burst int
}

// Off reports whether the limit lets everything through.
func (l Limit) Off() bool { return l.Rate <= 0 || math.IsNaN(l.Rate) }

// Interval is the time one request costs: 1/Rate, in whole microseconds
// (at least one), the unit every backend counts in.
func (l Limit) Interval() int64 {
	return max(1, int64(math.Round(1e6/l.Rate)))
}

// Window is how long an empty budget takes to fill up again (Burst x
// Interval), the w of a RateLimit-Policy.
func (l Limit) Window() time.Duration {
	return time.Duration(int64(l.burst())*l.Interval()) * time.Microsecond
}

func (l Limit) burst() int { return max(l.Burst, 1) }

// String is the limit as ParseLimit reads it: "20/s:40", or "off".
func (l Limit) String() string {
	if l.Off() {
		return "off"
	}
	return strconv.FormatFloat(l.Rate, 'f', -1, 64) + "/s:" + strconv.Itoa(l.burst())
}

// ParseLimit reads "RATE/s:BURST" or "RATE/m:BURST" (per minute), or "off"
// (also "0"). Without a burst, the burst is the rate rounded up.
func ParseLimit(s string) (Limit, error) {
	s = strings.TrimSpace(s)
	if s == "off" || s == "0" {
		return Limit{}, nil
	}
	rateS, burstS, hasBurst := strings.Cut(s, ":")
	per := 1.0
	switch {
	case strings.HasSuffix(rateS, "/s"):
		rateS = strings.TrimSuffix(rateS, "/s")
	case strings.HasSuffix(rateS, "/m"):
		rateS, per = strings.TrimSuffix(rateS, "/m"), 60
	default:
		return Limit{}, fmt.Errorf("limit %q: want RATE/s:BURST, RATE/m:BURST or off", s)
	}
	rate, err := strconv.ParseFloat(rateS, 64)
	if err != nil || rate <= 0 || math.IsInf(rate, 0) || math.IsNaN(rate) {
		return Limit{}, fmt.Errorf("limit %q: rate must be a positive number", s)
	}
	l := Limit{Rate: rate / per, Burst: int(math.Ceil(rate))}
	if hasBurst {
		b, err := strconv.Atoi(burstS)
		if err != nil || b < 1 {
			return Limit{}, fmt.Errorf("limit %q: burst must be a whole number of 1 or more", s)
		}
		l.Burst = b
	}
	if l.Interval() > int64(time.Hour/time.Microsecond) {
		return Limit{}, fmt.Errorf("limit %q: slower than one request an hour", s)
	}
	return l, nil
}

// Check is one budget a request spends from: its key (whose budget, for
// what) and its limit.
type Check struct {
	Key   string
	Limit Limit
}

// State is where one check's budget stands after a decision.
type State struct {
	// Remaining is how many more requests the budget allows now.
	Remaining int
	// Reset is how long until the budget is whole again.
	Reset time.Duration
}

// Decision is the answer to a request that spends from several budgets.
// Either every budget is spent (Allowed) or none is: a request refused by
// one budget costs the others nothing.
type Decision struct {
	Allowed bool
	// RetryAfter, when refused, is how long until every budget allows
	// the request again.
	RetryAfter time.Duration
	// States are the checks' budgets, in the order of the checks.
	States []State
}

// Cell is a budget's state: its theoretical arrival time (TAT) in
// microseconds since the epoch. A backend stores one per key.
type Cell = int64

// Spend is GCRA over several cells at now (µs): tats are the stored TATs
// (0 for none), limits the checks' limits. It returns the decision and,
// when allowed, the TATs to store. Backends that cannot run Go (Redis)
// repeat this arithmetic in their own language; the conformance suite
// holds them to it.
func Spend(now int64, tats []Cell, limits []Limit) (Decision, []Cell) {
	d := Decision{Allowed: true, States: make([]State, len(limits))}
	cur := make([]Cell, len(limits))
	next := make([]Cell, len(limits))
	var retry int64
	for i, l := range limits {
		t, b := l.Interval(), int64(l.burst())
		cur[i] = max(tats[i], now)
		next[i] = cur[i] + t
		if over := next[i] - now - b*t; over > 0 {
			d.Allowed = false
			retry = max(retry, over)
		}
	}
	// Refused, nothing is spent: every budget is reported as it stands.
	at := next
	if !d.Allowed {
		d.RetryAfter = µs(retry)
		at = cur
	}
	for i, l := range limits {
		t, b := l.Interval(), int64(l.burst())
		d.States[i] = State{Remaining: int(max(0, b*t-(at[i]-now)) / t), Reset: µs(at[i] - now)}
	}
	if !d.Allowed {
		return d, nil
	}
	return d, next
}

func µs(n int64) time.Duration { return time.Duration(n) * time.Microsecond }

// Micros is t in microseconds since the epoch, the clock of Spend.
func Micros(t time.Time) int64 { return t.UnixMicro() }
