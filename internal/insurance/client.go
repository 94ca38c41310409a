package insurance

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// Options are what a Client takes from its surroundings. The zero value
// works: no metrics registered, logs discarded, real clock and randomness.
type Options struct {
	// Registerer receives the yolda_insurer_* metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger hears breaker transitions (nothing per call: errors are
	// returned, and counted in metrics).
	Logger *slog.Logger
	// Now is the clock for latencies and the retry budget's window. (The
	// breaker's open_for runs on the real clock: gobreaker takes no clock.)
	Now func() time.Time
	// Rand returns a uniformly random number in [0, n), for backoff jitter.
	Rand func(n int64) int64
}

// Client calls one insurer through its Adapter, safely: see Verify.
// It is safe for concurrent use.
type Client struct {
	cfg     Config
	adapter Adapter
	log     *slog.Logger
	now     func() time.Time
	randN   func(int64) int64

	slots   chan struct{} // the bulkhead: a send takes a slot
	breaker *gobreaker.CircuitBreaker[Verdict]
	budget  *retryBudget
	recent  recentCalls

	calls, errs atomic.Uint64
	inFlight    atomic.Int64

	m         *metrics
	mInFlight prometheus.Gauge
	mDuration prometheus.Observer
	mRetries  prometheus.Counter
	mRejected prometheus.Counter
}

// NewClient builds the client of the insurer cfg describes (cfg must be
// valid: see Config.Default and Validate), calling it through a.
func NewClient(cfg Config, a Adapter, opts Options) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if a == nil {
		return nil, fmt.Errorf("insurer %s: no adapter", cfg.Code)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("insurer %s: metrics: %w", cfg.Code, err)
	}
	c := &Client{
		cfg:     cfg,
		adapter: a,
		log:     cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)).With("insurer", cfg.Code),
		now:     opts.Now,
		randN:   opts.Rand,
		slots:   make(chan struct{}, cfg.Bulkhead),
		m:       m,
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.randN == nil {
		c.randN = rand.Int64N
	}
	c.budget = newRetryBudget(cfg.Retry.Budget, c.now)
	code := cfg.Code
	c.mInFlight = m.inFlight.WithLabelValues(code)
	c.mDuration = m.duration.WithLabelValues(code)
	c.mRetries = m.retries.WithLabelValues(code)
	c.mRejected = m.rejections.WithLabelValues(code)
	for _, o := range []string{outcomeCovered, outcomeNotCovered, outcomeError} {
		m.calls.WithLabelValues(code, o) // the series exist from the start
	}
	m.state.WithLabelValues(code).Set(stateValue(gobreaker.StateClosed))

	failures := uint32(cfg.Breaker.Failures)
	c.breaker = gobreaker.NewCircuitBreaker[Verdict](gobreaker.Settings{
		Name:        code,
		MaxRequests: uint32(cfg.Breaker.HalfOpenProbes),
		Timeout:     cfg.Breaker.OpenFor,
		ReadyToTrip: func(n gobreaker.Counts) bool { return n.ConsecutiveFailures >= failures },
		// Only the insurer being down or broken is a failure.
		IsSuccessful: func(err error) bool { return err == nil || !breakerFailure(err) },
		// A caller giving up says nothing about the insurer.
		IsExcluded:    func(err error) bool { return errors.Is(err, ErrCanceled) },
		OnStateChange: c.onStateChange, // called with the breaker's lock held
	})
	return c, nil
}

// Code is the insurer's code.
func (c *Client) Code() string { return c.cfg.Code }

// Config is the insurer's configuration (patience, verify_before_dispatch...).
func (c *Client) Config() Config { return c.cfg }

// Verify asks the insurer about q. Outermost first, it applies:
//
//   - the bulkhead: with cfg.Bulkhead calls already in flight it fails at
//     once with ErrBulkheadFull (it never queues);
//   - the circuit breaker: while open (or half-open with its probes in
//     flight) it fails at once with ErrUnavailable; a Verify that ends in
//     an infrastructure failure (timeout, refused, server, bad payload)
//     counts one failure, whatever its retries;
//   - retries of retryable failures (Retryable), up to Retry.Attempts tries,
//     each after a full-jitter backoff, while the retry budget allows and
//     the sleep ends before ctx's deadline;
//   - a deadline of cfg.Timeout on each attempt.
//
// A Verdict with Covered false is an answer, not an error. Errors match a
// sentinel (see Kind; only an adapter's unclassified errors match none);
// when ctx ends first it is ErrCanceled.
func (c *Client) Verify(ctx context.Context, q Query) (Verdict, error) {
	if err := ctx.Err(); err != nil {
		return Verdict{}, fmt.Errorf("insurer %s: %w", c.cfg.Code, &kindError{sentinel: ErrCanceled, err: err})
	}
	select {
	case c.slots <- struct{}{}:
	default:
		c.mRejected.Inc()
		c.rejected(KindBulkheadFull)
		return Verdict{}, fmt.Errorf("insurer %s: %w (%d calls in flight)", c.cfg.Code, ErrBulkheadFull, cap(c.slots))
	}
	c.inFlight.Add(1)
	c.mInFlight.Inc()
	defer func() {
		c.mInFlight.Dec()
		c.inFlight.Add(-1)
		<-c.slots
	}()

	v, err := c.breaker.Execute(func() (Verdict, error) { return c.tries(ctx, q) })
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		c.rejected(KindUnavailable)
		return Verdict{}, fmt.Errorf("insurer %s: %w", c.cfg.Code, ErrUnavailable)
	}
	return v, err
}

// tries makes the attempts of one Verify.
func (c *Client) tries(ctx context.Context, q Query) (Verdict, error) {
	c.budget.call()
	attempts := c.cfg.Retry.Attempts
	var err error
	for n := range attempts {
		if n > 0 {
			if !Retryable(err) {
				break
			}
			delay := backoff(n-1, c.cfg.Retry.BaseDelay, c.cfg.Retry.MaxDelay, c.randN)
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= delay {
				err = fmt.Errorf("%w (not retried: the caller's deadline is too near)", err)
				break
			}
			if !c.budget.retry() {
				err = fmt.Errorf("%w (not retried: retry budget spent)", err)
				break
			}
			if !sleep(ctx, delay) {
				err = &kindError{sentinel: ErrCanceled, err: err}
				break
			}
			c.mRetries.Inc()
		}
		var v Verdict
		if v, err = c.attempt(ctx, q); err == nil {
			return v, nil
		}
		err = fmt.Errorf("attempt %d/%d: %w", n+1, attempts, err)
	}
	return Verdict{}, fmt.Errorf("insurer %s: %w", c.cfg.Code, err)
}

// attempt makes one call to the adapter, under the per-attempt deadline.
func (c *Client) attempt(ctx context.Context, q Query) (Verdict, error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	start := c.now()
	v, err := c.adapter.Verify(actx, q)
	cancel()
	took := c.now().Sub(start)

	c.calls.Add(1)
	c.mDuration.Observe(took.Seconds())
	switch {
	case err != nil:
		err = classify(ctx, err)
		c.errs.Add(1)
		c.m.calls.WithLabelValues(c.cfg.Code, outcomeError).Inc()
		c.m.errors.WithLabelValues(c.cfg.Code, Kind(err)).Inc()
	case v.Covered:
		c.m.calls.WithLabelValues(c.cfg.Code, outcomeCovered).Inc()
	default:
		c.m.calls.WithLabelValues(c.cfg.Code, outcomeNotCovered).Inc()
	}
	c.recent.add(took, err != nil)
	return v, err
}

// rejected counts a Verify that sent nothing.
func (c *Client) rejected(kind string) {
	c.m.errors.WithLabelValues(c.cfg.Code, kind).Inc()
}

// breakerFailure reports whether err means the insurer is down or broken.
func breakerFailure(err error) bool {
	switch Kind(err) {
	case KindClient, KindCanceled:
		return false
	}
	return true
}

func (c *Client) onStateChange(_ string, from, to gobreaker.State) {
	c.m.state.WithLabelValues(c.cfg.Code).Set(stateValue(to))
	c.m.transitions.WithLabelValues(c.cfg.Code, to.String()).Inc()
	level := slog.LevelInfo
	if to == gobreaker.StateOpen {
		level = slog.LevelWarn
	}
	c.log.Log(context.Background(), level, "insurer circuit breaker "+to.String(),
		"from", from.String(), "open_for", c.cfg.Breaker.OpenFor)
}

func stateValue(s gobreaker.State) float64 {
	switch s {
	case gobreaker.StateHalfOpen:
		return 1
	case gobreaker.StateOpen:
		return 2
	}
	return 0
}

// sleep waits d, or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Health is an insurer's state for operators (GET /v1/insurers). Calls are
// attempts sent to the insurer; the error rate and latencies cover the last
// recentSize of them.
type Health struct {
	Code, Name string
	// Breaker is "closed", "open" or "half-open".
	Breaker string
	// Calls and Errors count attempts since start.
	Calls, Errors uint64
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
		Breaker:  c.breaker.State().String(),
		Calls:    c.calls.Load(),
		Errors:   c.errs.Load(),
		InFlight: int(c.inFlight.Load()),
	}
	h.ErrorRate, h.LatencyP50, h.LatencyP99 = c.recent.summary()
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

// summary returns the error rate and the 50th and 99th percentile latency
// (nearest rank) of the recent attempts; zeros if there were none.
func (r *recentCalls) summary() (errorRate float64, p50, p99 time.Duration) {
	r.mu.Lock()
	n := min(r.n, recentSize)
	took := slices.Clone(r.took[:n])
	failed := 0
	for _, f := range r.failed[:n] {
		if f {
			failed++
		}
	}
	r.mu.Unlock()
	if n == 0 {
		return 0, 0, 0
	}
	slices.Sort(took)
	rank := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(n)-1e-9)) - 1 // nearest rank, despite 0.99*100 = 99.00000000000001
		return took[max(0, min(n-1, i))]
	}
	return float64(failed) / float64(n), rank(0.50), rank(0.99)
}

// Clients are the clients of every configured insurer, by code.
// A nil *Clients is a valid empty set.
type Clients struct {
	list   []*Client
	byCode map[string]*Client
}

// NewClients builds one Client per configuration, each with the adapter
// factories[cfg.Adapter] builds for it. Codes must be unique.
func NewClients(cfgs []Config, factories map[string]Factory, opts Options) (*Clients, error) {
	s := &Clients{byCode: make(map[string]*Client, len(cfgs))}
	for _, cfg := range cfgs {
		if _, dup := s.byCode[cfg.Code]; dup {
			return nil, errors.Join(fmt.Errorf("insurer %s: code used twice", cfg.Code), s.Close())
		}
		factory, ok := factories[cfg.Adapter]
		if !ok {
			known := make([]string, 0, len(factories))
			for name := range factories {
				known = append(known, name)
			}
			slices.Sort(known)
			return nil, errors.Join(fmt.Errorf("insurer %s: adapter: unknown adapter %q (known: %v)", cfg.Code, cfg.Adapter, known), s.Close())
		}
		a, err := factory(cfg)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("insurer %s: adapter %s: %w", cfg.Code, cfg.Adapter, err), s.Close())
		}
		c, err := NewClient(cfg, a, opts)
		if err != nil {
			if cl, ok := a.(io.Closer); ok {
				cl.Close()
			}
			return nil, errors.Join(err, s.Close())
		}
		s.list = append(s.list, c)
		s.byCode[cfg.Code] = c
	}
	return s, nil
}

// Get returns the client of the insurer with that code.
func (s *Clients) Get(code string) (*Client, bool) {
	if s == nil {
		return nil, false
	}
	c, ok := s.byCode[code]
	return c, ok
}

// All returns the clients in configuration order.
func (s *Clients) All() []*Client {
	if s == nil {
		return nil
	}
	return slices.Clone(s.list)
}

// Health returns every insurer's health, in configuration order.
func (s *Clients) Health() []Health {
	hs := make([]Health, 0, len(s.All()))
	for _, c := range s.All() {
		hs = append(hs, c.Health())
	}
	return hs
}

// Close releases the adapters' resources (idle connections); call it once
// no Verify is running.
func (s *Clients) Close() error {
	var errs []error
	for _, c := range s.All() {
		if cl, ok := c.adapter.(io.Closer); ok {
			errs = append(errs, cl.Close())
		}
	}
	return errors.Join(errs...)
}
