// Package resilient is the one safe way to call an insurer: Client wraps
// one insurer's insurance.Adapter in a bulkhead, a circuit breaker,
// budgeted retries with jittered back-off and a per-attempt deadline, and
// reports its health and its Prometheus metrics. Clients holds one per
// configured insurer.
//
// It knows nothing of requests or queues: what a failed check means for a
// request is the caller's (internal/insurance/checks).
package resilient

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/insurance"
)

// Options are what a Client takes from its surroundings. The zero value
// works: no metrics registered, logs discarded, real clock and randomness.
type Options struct {
	// Registerer receives the yolda_insurer_* metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger hears breaker transitions (nothing per call: errors are
	// returned, and counted in metrics).
	Logger *slog.Logger
	// Now is the clock for latencies, the retry budget's window and the
	// breaker's open_for.
	Now func() time.Time
	// Rand returns a uniformly random number in [0, n), for backoff jitter.
	Rand func(n int64) int64
	// BreakerChanged, if set, hears each breaker transition (the insurer's
	// code and the state entered), so that the health others read of this
	// process can be posted at once. It runs with the breaker's lock held:
	// it must not block or call the client.
	BreakerChanged func(code, state string)
}

// Client calls one insurer through its Adapter, safely: see Verify.
// It is safe for concurrent use.
type Client struct {
	cfg     insurance.Config
	adapter insurance.Adapter
	log     *slog.Logger
	now     func() time.Time
	randN   func(int64) int64
	changed func(code, state string)

	slots   chan struct{} // the bulkhead: a send takes a slot
	breaker *breaker
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
func NewClient(cfg insurance.Config, a insurance.Adapter, opts Options) (*Client, error) {
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
		changed: opts.BreakerChanged,
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
	m.state.WithLabelValues(code).Set(stateClosed.value())
	c.breaker = newBreaker(cfg.Breaker.Failures, cfg.Breaker.HalfOpenProbes, cfg.Breaker.OpenFor, c.now, c.onStateChange)
	return c, nil
}

// Code is the insurer's code.
func (c *Client) Code() string { return c.cfg.Code }

// Config is the insurer's configuration (patience, verify_before_dispatch...).
func (c *Client) Config() insurance.Config { return c.cfg }

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
func (c *Client) Verify(ctx context.Context, q insurance.Query) (insurance.Verdict, error) {
	v, _, err := c.VerifyCounted(ctx, q)
	return v, err
}

// VerifyCounted is Verify, also saying how many attempts reached the
// adapter: 0 when the bulkhead or the breaker turned the call away (or ctx
// had ended), so that a caller recording its calls can tell a call the
// insurer saw from one it never heard of.
func (c *Client) VerifyCounted(ctx context.Context, q insurance.Query) (insurance.Verdict, int, error) {
	if err := ctx.Err(); err != nil {
		return insurance.Verdict{}, 0, fmt.Errorf("insurer %s: %w", c.cfg.Code, insurance.WithKind(insurance.ErrCanceled, err))
	}
	select {
	case c.slots <- struct{}{}:
	default:
		c.mRejected.Inc()
		c.rejected(insurance.KindBulkheadFull)
		return insurance.Verdict{}, 0, fmt.Errorf("insurer %s: %w (%d calls in flight)", c.cfg.Code, insurance.ErrBulkheadFull, cap(c.slots))
	}
	c.inFlight.Add(1)
	c.mInFlight.Inc()
	defer func() {
		c.mInFlight.Dec()
		c.inFlight.Add(-1)
		<-c.slots
	}()

	done, ok := c.breaker.allow()
	if !ok {
		c.rejected(insurance.KindUnavailable)
		return insurance.Verdict{}, 0, fmt.Errorf("insurer %s: %w", c.cfg.Code, insurance.ErrUnavailable)
	}
	v, n, err := c.tries(ctx, q)
	done(breakerOutcome(err))
	return v, n, err
}

// tries makes the attempts of one Verify and says how many it made.
func (c *Client) tries(ctx context.Context, q insurance.Query) (insurance.Verdict, int, error) {
	c.budget.call()
	attempts := c.cfg.Retry.Attempts
	var err error
	made := 0
	for n := range attempts {
		if n > 0 {
			if !insurance.Retryable(err) {
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
				err = insurance.WithKind(insurance.ErrCanceled, err)
				break
			}
			c.mRetries.Inc()
		}
		var v insurance.Verdict
		made++
		if v, err = c.attempt(ctx, q); err == nil {
			return v, made, nil
		}
		err = fmt.Errorf("attempt %d/%d: %w", n+1, attempts, err)
	}
	return insurance.Verdict{}, made, fmt.Errorf("insurer %s: %w", c.cfg.Code, err)
}

// attempt makes one call to the adapter, under the per-attempt deadline.
func (c *Client) attempt(ctx context.Context, q insurance.Query) (insurance.Verdict, error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	start := c.now()
	v, err := c.adapter.Verify(actx, q)
	cancel()
	took := c.now().Sub(start)

	c.calls.Add(1)
	c.mDuration.Observe(took.Seconds())
	switch {
	case err != nil:
		err = insurance.Classify(ctx, err)
		c.errs.Add(1)
		c.m.calls.WithLabelValues(c.cfg.Code, outcomeError).Inc()
		c.m.errors.WithLabelValues(c.cfg.Code, insurance.Kind(err)).Inc()
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

// breakerOutcome is how a Verify's result counts for the breaker: only the
// insurer being down or broken is a failure, and a caller giving up says
// nothing about the insurer.
func breakerOutcome(err error) outcome {
	switch insurance.Kind(err) {
	case "", insurance.KindClient:
		return success
	case insurance.KindCanceled:
		return excluded
	}
	return failure
}

// onStateChange reports a breaker transition: a warning when the breaker
// opens (calls to the insurer stop), info when it half-opens or closes.
func (c *Client) onStateChange(from, to breakerState) {
	c.m.state.WithLabelValues(c.cfg.Code).Set(to.value())
	c.m.transitions.WithLabelValues(c.cfg.Code, to.String()).Inc()
	level := slog.LevelInfo
	if to == stateOpen {
		level = slog.LevelWarn
	}
	c.log.Log(context.Background(), level, "insurer circuit breaker "+to.String(),
		"from", from.String(), "open_for", c.cfg.Breaker.OpenFor)
	if c.changed != nil {
		c.changed(c.cfg.Code, to.String())
	}
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
