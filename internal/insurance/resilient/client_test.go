package resilient_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/yolda/yolda/internal/insurance"
	"github.com/yolda/yolda/internal/insurance/resilient"
	"github.com/yolda/yolda/internal/insurance/rest"
)

func TestVerifyAnswers(t *testing.T) {
	t.Parallel()
	fx := setup(t, func(c *insurance.Config) {
		c.Auth = insurance.Auth{Header: "Authorization", Scheme: "Bearer", ValueEnv: "K", Value: insurance.NewSecret("s3cret")}
	})

	v, err := fx.verify(t, "POL-1")
	if err != nil {
		t.Fatal(err)
	}
	want := insurance.Verdict{Covered: true, Reference: "chk-1", Coverage: &insurance.Coverage{MaxTowKm: 100, Services: []string{"tow", "jump_start"}},
		CoverageDocument: json.RawMessage(`{"max_tow_km": 100, "services": ["tow", "jump_start"]}`)}
	if diff := cmp.Diff(want, v, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Raw" }, cmp.Ignore())); diff != "" {
		t.Errorf("verdict (-want +got):\n%s", diff)
	}
	if !json.Valid(v.Raw) {
		t.Errorf("Raw = %q, want the answer's JSON", v.Raw)
	}
	if got := fx.fake.headers[0].Get("Authorization"); got != "Bearer s3cret" {
		t.Errorf("Authorization = %q", got)
	}

	// "Not covered" is an answer: no error, no breaker failure, however many.
	for range 10 {
		v, err := fx.verify(t, "REJ-1")
		if err != nil || v.Covered || v.Reason != "policy lapsed" {
			t.Fatalf("Verify(REJ) = %+v, %v; want not covered, no error", v, err)
		}
	}
	h := fx.client.Health()
	if h.Breaker != "closed" || h.Calls != 11 || h.Errors != 0 || h.ErrorRate != 0 || h.LatencyP99 <= 0 {
		t.Errorf("Health = %+v", h)
	}
	for outcome, want := range map[string]float64{"covered": 1, "not_covered": 10, "error": 0} {
		if got := metric(t, fx.reg, "yolda_insurer_calls_total", "insurer", "acme", "outcome", outcome); got != want {
			t.Errorf("calls_total{%s} = %v, want %v", outcome, got, want)
		}
	}
	if got := metric(t, fx.reg, "yolda_insurer_call_duration_seconds", "insurer", "acme"); got != 11 {
		t.Errorf("call_duration_seconds count = %v, want 11", got)
	}
}

func TestErrorKinds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode      string
		kind      string
		retryable bool
		hits      int64 // per Verify, attempts = 3
		sentinel  error
	}{
		{modeDown, insurance.KindServer, true, 3, insurance.ErrServer},
		{modeReset, insurance.KindRefused, true, 3, insurance.ErrRefused},
		{modeGarbage, insurance.KindBadPayload, false, 1, insurance.ErrBadPayload},
		{modeBad, insurance.KindClient, false, 1, insurance.ErrClient},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			t.Parallel()
			fx := setup(t, func(c *insurance.Config) { c.Breaker.Failures = 100 })
			fx.fake.set(tt.mode)
			_, err := fx.verify(t, "POL-1")
			if !errors.Is(err, tt.sentinel) {
				t.Fatalf("err = %v, want %v", err, tt.sentinel)
			}
			if got := insurance.Kind(err); got != tt.kind {
				t.Errorf("Kind = %q, want %q (err %v)", got, tt.kind, err)
			}
			if got := insurance.Retryable(err); got != tt.retryable {
				t.Errorf("Retryable = %v, want %v", got, tt.retryable)
			}
			if got := fx.fake.hits.Load(); got != tt.hits {
				t.Errorf("server hits = %d, want %d", got, tt.hits)
			}
			if got := metric(t, fx.reg, "yolda_insurer_errors_total", "insurer", "acme", "kind", tt.kind); got != float64(tt.hits) {
				t.Errorf("errors_total{%s} = %v, want %v", tt.kind, got, tt.hits)
			}
			if got := metric(t, fx.reg, "yolda_insurer_retries_total", "insurer", "acme"); got != float64(tt.hits-1) {
				t.Errorf("retries_total = %v, want %v", got, tt.hits-1)
			}
		})
	}

	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nobody listens there now
		fx := setup(t, func(c *insurance.Config) { c.BaseURL = "http://" + addr })
		_, err = fx.verify(t, "POL-1")
		if insurance.Kind(err) != insurance.KindRefused || !errors.Is(err, insurance.ErrRefused) || !insurance.Retryable(err) {
			t.Errorf("err = %v (kind %q), want refused", err, insurance.Kind(err))
		}
	})

	t.Run("retry then success", func(t *testing.T) {
		t.Parallel()
		fx := setup(t, nil)
		fx.fake.set(modeDown)
		var served atomic.Int64
		fx.client = wrap(t, fx, func(ctx context.Context, q insurance.Query, next insurance.Adapter) (insurance.Verdict, error) {
			if served.Add(1) == 3 {
				fx.fake.set(modeOK)
			}
			return next.Verify(ctx, q)
		})
		v, err := fx.verify(t, "POL-1")
		if err != nil || !v.Covered {
			t.Fatalf("Verify = %+v, %v; want covered after two retries", v, err)
		}
		if got := fx.fake.hits.Load(); got != 3 {
			t.Errorf("server hits = %d, want 3", got)
		}
	})
}

// adapterFunc makes a function an Adapter.
type adapterFunc func(ctx context.Context, q insurance.Query) (insurance.Verdict, error)

func (f adapterFunc) Verify(ctx context.Context, q insurance.Query) (insurance.Verdict, error) {
	return f(ctx, q)
}

// wrap rebuilds fx's client with an adapter that runs mw around the rest one.
func wrap(t *testing.T, fx fixture, mw func(context.Context, insurance.Query, insurance.Adapter) (insurance.Verdict, error)) *resilient.Client {
	t.Helper()
	return wrapWith(t, fx, resilient.Options{}, mw)
}

// wrapWith is wrap with the client's options.
func wrapWith(t *testing.T, fx fixture, opts resilient.Options, mw func(context.Context, insurance.Query, insurance.Adapter) (insurance.Verdict, error)) *resilient.Client {
	t.Helper()
	next, err := rest.New(fx.cfg, rest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { next.Close() })
	c, err := resilient.NewClient(fx.cfg, adapterFunc(func(ctx context.Context, q insurance.Query) (insurance.Verdict, error) {
		return mw(ctx, q, next)
	}), opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A hung insurer: every call ends at its deadline, the bulkhead admits its
// size and rejects the rest at once, and nothing is left running after.
func TestHangBulkhead(t *testing.T) {
	fx := setup(t, func(c *insurance.Config) {
		c.Timeout = 150 * time.Millisecond
		c.Retry.Attempts = 2
		c.Breaker.Failures = 1000
	})
	fx.fake.set(modeHang)
	// Calls in flight are counted where the bulkhead holds them, at the
	// adapter: the insurer may still be holding an attempt the client has
	// abandoned at its deadline, for a moment, while the retry is sent.
	var calling, maxCalling atomic.Int64
	client := wrapWith(t, fx, resilient.Options{Registerer: fx.reg}, func(ctx context.Context, q insurance.Query, next insurance.Adapter) (insurance.Verdict, error) {
		n := calling.Add(1)
		defer calling.Add(-1)
		for {
			m := maxCalling.Load()
			if n <= m || maxCalling.CompareAndSwap(m, n) {
				break
			}
		}
		return next.Verify(ctx, q)
	})
	before := runtime.NumGoroutine()

	const callers = 40
	var (
		wg                  sync.WaitGroup
		full, timedOut, odd atomic.Int64
		slowest             atomic.Int64
	)
	start := make(chan struct{})
	for range callers {
		wg.Go(func() {
			<-start
			t0 := time.Now()
			_, err := client.Verify(context.Background(), query("POL-1"))
			took := time.Since(t0)
			switch insurance.Kind(err) {
			case insurance.KindBulkheadFull:
				full.Add(1)
				if took > 50*time.Millisecond {
					t.Errorf("bulkhead rejection took %s, want at once", took)
				}
			case insurance.KindTimeout:
				timedOut.Add(1)
				for {
					s := slowest.Load()
					if int64(took) <= s || slowest.CompareAndSwap(s, int64(took)) {
						break
					}
				}
				if took < fx.cfg.Timeout {
					t.Errorf("timeout after %s, before the deadline %s", took, fx.cfg.Timeout)
				}
			default:
				odd.Add(1)
				t.Errorf("unexpected error %v", err)
			}
			if !errors.Is(err, context.DeadlineExceeded) && insurance.Kind(err) == insurance.KindTimeout {
				t.Errorf("timeout error %v does not wrap context.DeadlineExceeded", err)
			}
		})
	}
	eventually(t, "callers started", func() bool { return runtime.NumGoroutine() >= before+callers })
	close(start)
	eventually(t, "the bulkhead to fill", func() bool { return client.Health().InFlight == fx.cfg.Bulkhead })
	if got := metric(t, fx.reg, "yolda_insurer_in_flight", "insurer", "acme"); got != float64(fx.cfg.Bulkhead) {
		t.Errorf("in_flight gauge = %v, want %d", got, fx.cfg.Bulkhead)
	}
	wg.Wait()

	if got := timedOut.Load(); got != int64(fx.cfg.Bulkhead) {
		t.Errorf("%d calls timed out, want the bulkhead's %d", got, fx.cfg.Bulkhead)
	}
	if got := full.Load(); got != callers-int64(fx.cfg.Bulkhead) {
		t.Errorf("%d calls rejected by the bulkhead, want %d", got, callers-fx.cfg.Bulkhead)
	}
	if got := maxCalling.Load(); got != int64(fx.cfg.Bulkhead) {
		t.Errorf("%d calls at once through the bulkhead of %d", got, fx.cfg.Bulkhead)
	}
	// Two attempts of 150ms and a backoff of at most 5ms, plus slack.
	if limit := 2*fx.cfg.Timeout + 5*time.Millisecond + 150*time.Millisecond; time.Duration(slowest.Load()) > limit {
		t.Errorf("slowest call took %s, want <= %s", time.Duration(slowest.Load()), limit)
	}
	if got := metric(t, fx.reg, "yolda_insurer_bulkhead_rejections_total", "insurer", "acme"); got != float64(full.Load()) {
		t.Errorf("bulkhead_rejections_total = %v, want %d", got, full.Load())
	}
	if got := client.Health().InFlight; got != 0 {
		t.Errorf("Health.InFlight = %d after all returned", got)
	}
	eventually(t, "goroutines to wind down", func() bool { return runtime.NumGoroutine() <= before+2 })
}

func TestCallerContext(t *testing.T) {
	t.Parallel()
	fx := setup(t, func(c *insurance.Config) { c.Timeout = 5 * time.Second; c.Breaker.Failures = 1 })
	fx.fake.set(modeHang)

	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		t0 := time.Now()
		_, err := fx.client.Verify(ctx, query("POL-1"))
		cancel()
		if took := time.Since(t0); took > time.Second {
			t.Fatalf("Verify outlived its caller's context: %s", took)
		}
		if insurance.Kind(err) != insurance.KindCanceled || insurance.Retryable(err) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v (kind %q), want canceled wrapping the caller's deadline", err, insurance.Kind(err))
		}
	}
	// The caller giving up says nothing about the insurer.
	if got := fx.client.Health().Breaker; got != "closed" {
		t.Errorf("breaker %s after abandoned calls, want closed", got)
	}
	if got := fx.fake.hits.Load(); got != 3 {
		t.Errorf("server hits = %d, want 3 (no retries once the caller is gone)", got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := fx.client.Verify(ctx, query("POL-1")); !errors.Is(err, insurance.ErrCanceled) || !errors.Is(err, context.Canceled) {
		t.Errorf("Verify with a cancelled context = %v", err)
	}
	if got := fx.fake.hits.Load(); got != 3 {
		t.Errorf("a cancelled context reached the insurer")
	}
}

// A retry is skipped when its backoff would end after the caller's deadline.
func TestRetryNeverOutlivesCaller(t *testing.T) {
	t.Parallel()
	fx := setup(t, func(c *insurance.Config) {
		c.Retry.BaseDelay, c.Retry.MaxDelay = 300*time.Millisecond, 300*time.Millisecond
	}, func(o *resilient.Options) { o.Rand = func(n int64) int64 { return n - 1 } })
	fx.fake.set(modeDown)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	_, err := fx.client.Verify(ctx, query("POL-1"))
	if took := time.Since(t0); took > 150*time.Millisecond {
		t.Errorf("Verify took %s; the retry should have been skipped", took)
	}
	if insurance.Kind(err) != insurance.KindServer {
		t.Errorf("err = %v, want the server error", err)
	}
	if got := fx.fake.hits.Load(); got != 1 {
		t.Errorf("server hits = %d, want 1", got)
	}
}

func TestBreaker(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	logs := &logRecorder{}
	fx := setup(t, func(c *insurance.Config) { c.Retry.Attempts = 1 }, func(o *resilient.Options) {
		o.Now, o.Logger = clock.Now, slog.New(logs)
	})
	state := func() float64 { return metric(t, fx.reg, "yolda_insurer_breaker_state", "insurer", "acme") }

	// A client error is not the insurer being down.
	fx.fake.set(modeBad)
	for range 5 {
		if _, err := fx.verify(t, "POL-1"); insurance.Kind(err) != insurance.KindClient {
			t.Fatalf("err = %v, want client", err)
		}
	}
	if got := fx.client.Health().Breaker; got != "closed" {
		t.Fatalf("breaker %s after client errors, want closed", got)
	}

	// Down: it opens after `failures` consecutive failures...
	fx.fake.set(modeDown)
	hits := fx.fake.hits.Load()
	for i := range fx.cfg.Breaker.Failures {
		if _, err := fx.verify(t, "POL-1"); insurance.Kind(err) != insurance.KindServer {
			t.Fatalf("call %d: err = %v, want server", i, err)
		}
	}
	if got := fx.client.Health().Breaker; got != "open" || state() != 2 {
		t.Fatalf("breaker %s (gauge %v) after %d failures, want open", got, state(), fx.cfg.Breaker.Failures)
	}
	if !logs.has(slog.LevelWarn, "insurer circuit breaker open") {
		t.Errorf("no warning logged when the breaker opened: %v", logs.lines())
	}
	// ...and no call reaches the insurer while it is open, however long
	// short of open_for.
	clock.Advance(fx.cfg.Breaker.OpenFor - time.Millisecond)
	for range 20 {
		_, err := fx.verify(t, "POL-1")
		if !errors.Is(err, insurance.ErrUnavailable) || insurance.Kind(err) != insurance.KindUnavailable || insurance.Retryable(err) {
			t.Fatalf("err = %v, want unavailable", err)
		}
	}
	if got := fx.fake.hits.Load() - hits; got != int64(fx.cfg.Breaker.Failures) {
		t.Errorf("the insurer saw %d calls, want %d: none while open", got, fx.cfg.Breaker.Failures)
	}
	if got := metric(t, fx.reg, "yolda_insurer_errors_total", "insurer", "acme", "kind", "unavailable"); got != 20 {
		t.Errorf("errors_total{unavailable} = %v, want 20", got)
	}

	// After open_for, one probe goes through; still down, it opens again.
	clock.Advance(time.Millisecond)
	if got := fx.client.Health().Breaker; got != "half-open" || state() != 1 {
		t.Fatalf("breaker %s (gauge %v) after open_for, want half-open", got, state())
	}
	hits = fx.fake.hits.Load()
	if _, err := fx.verify(t, "POL-1"); insurance.Kind(err) != insurance.KindServer {
		t.Fatalf("probe: err = %v, want server", err)
	}
	if got := fx.fake.hits.Load() - hits; got != 1 {
		t.Errorf("probe reached the insurer %d times, want 1", got)
	}
	if got := fx.client.Health().Breaker; got != "open" {
		t.Fatalf("breaker %s after a failed probe, want open", got)
	}

	// Recovery: the insurer is back; while the (slow) probe runs other calls
	// are still refused; once it succeeds the breaker closes.
	fx.fake.set(modeSlow)
	clock.Advance(fx.cfg.Breaker.OpenFor)
	probe := make(chan error, 1)
	go func() { _, err := fx.verify(t, "POL-1"); probe <- err }()
	eventually(t, "the probe to reach the insurer", func() bool { return fx.fake.inFlight.Load() == 1 })
	if _, err := fx.verify(t, "POL-1"); !errors.Is(err, insurance.ErrUnavailable) {
		t.Errorf("call during the probe: err = %v, want unavailable", err)
	}
	if err := <-probe; err != nil {
		t.Fatalf("probe: %v", err)
	}
	if got := fx.client.Health().Breaker; got != "closed" || state() != 0 {
		t.Fatalf("breaker %s (gauge %v) after a good probe, want closed", got, state())
	}
	if !logs.has(slog.LevelInfo, "insurer circuit breaker closed") {
		t.Errorf("nothing logged when the breaker closed: %v", logs.lines())
	}
	if _, err := fx.verify(t, "POL-1"); err != nil {
		t.Errorf("after recovery: %v", err)
	}
	for to, want := range map[string]float64{"open": 2, "half-open": 2, "closed": 1} {
		if got := metric(t, fx.reg, "yolda_insurer_breaker_transitions_total", "insurer", "acme", "to", to); got != want {
			t.Errorf("breaker_transitions_total{to=%s} = %v, want %v", to, got, want)
		}
	}
}

// Garbage is a breaker failure (the insurer is broken) but never retried.
func TestGarbageTripsBreakerWithoutRetries(t *testing.T) {
	t.Parallel()
	fx := setup(t, nil)
	fx.fake.set(modeGarbage)
	for range fx.cfg.Breaker.Failures {
		if _, err := fx.verify(t, "POL-1"); insurance.Kind(err) != insurance.KindBadPayload {
			t.Fatalf("err = %v, want bad_payload", err)
		}
	}
	if got := fx.fake.hits.Load(); got != int64(fx.cfg.Breaker.Failures) {
		t.Errorf("server hits = %d, want %d (no retries)", got, fx.cfg.Breaker.Failures)
	}
	if got := fx.client.Health().Breaker; got != "open" {
		t.Errorf("breaker %s, want open", got)
	}
}

// Under a total outage the retry budget, not the attempts, bounds the load.
func TestRetryBudgetCapsRetries(t *testing.T) {
	t.Parallel()
	fx := setup(t, func(c *insurance.Config) {
		c.Retry.BaseDelay, c.Retry.MaxDelay = time.Microsecond, time.Microsecond
		c.Breaker.Failures = 10000 // keep calling
	})
	fx.fake.set(modeDown)
	const calls = 200
	for range calls {
		if _, err := fx.verify(t, "POL-1"); insurance.Kind(err) != insurance.KindServer {
			t.Fatalf("err = %v, want server", err)
		}
	}
	hits := fx.fake.hits.Load()
	// Without a budget: 3 attempts each, 600 hits. With it: the 200 calls,
	// 20% of them as retries, and the floor of 10.
	if limit := int64(calls + calls*fx.cfg.Retry.Budget + 10); hits > limit || hits < calls+10 {
		t.Errorf("the insurer saw %d calls; want in [%d, %d]", hits, calls+10, limit)
	}
	if got := metric(t, fx.reg, "yolda_insurer_retries_total", "insurer", "acme"); got != float64(hits-calls) {
		t.Errorf("retries_total = %v, want %d", got, hits-calls)
	}
	t.Logf("%d calls, %d hits", calls, hits)
}

// Backoff sleeps are drawn from [0, cap]: with a Rand that returns the top
// of its range, each sleep is its cap.
func TestBackoffUsesFullJitter(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		draws []int64
	)
	fx := setup(t, func(c *insurance.Config) {
		c.Retry.Attempts = 5
		c.Retry.BaseDelay, c.Retry.MaxDelay = 2*time.Millisecond, 5*time.Millisecond
		c.Retry.Budget = 1
	}, func(o *resilient.Options) {
		o.Rand = func(n int64) int64 {
			mu.Lock()
			defer mu.Unlock()
			draws = append(draws, n)
			return n - 1
		}
	})
	fx.fake.set(modeDown)
	t0 := time.Now()
	fx.verify(t, "POL-1")
	took := time.Since(t0)
	want := []int64{int64(2*time.Millisecond) + 1, int64(4*time.Millisecond) + 1, int64(5*time.Millisecond) + 1, int64(5*time.Millisecond) + 1}
	if diff := cmp.Diff(want, draws); diff != "" {
		t.Errorf("backoff draws (n of rand(n)) (-want +got):\n%s", diff)
	}
	if took < 16*time.Millisecond {
		t.Errorf("Verify took %s, want at least the 16ms of maximal backoffs", took)
	}
}

func TestNewClients(t *testing.T) {
	t.Parallel()
	fake := newFakeInsurer(t)
	cfgs := []insurance.Config{
		insurance.Config{Code: "a", BaseURL: fake.srv.URL}.Default(),
		insurance.Config{Code: "b", BaseURL: fake.srv.URL, Name: "Bee"}.Default(),
	}
	factories := map[string]insurance.Factory{rest.Name: rest.Factory(rest.Options{})}
	set, err := resilient.NewClients(cfgs, factories, resilient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	b, ok := set.Get("b")
	if !ok || b.Code() != "b" || b.Config().Name != "Bee" {
		t.Fatalf("Get(b) = %v, %v", b, ok)
	}
	if _, err := b.Verify(context.Background(), query("POL-1")); err != nil {
		t.Fatal(err)
	}
	hs := set.Health()
	if len(hs) != 2 || hs[0].Code != "a" || hs[1].Calls != 1 {
		t.Errorf("Health = %+v", hs)
	}
	js, _ := json.Marshal(hs[1])
	var m map[string]any
	json.Unmarshal(js, &m)
	for _, k := range []string{"code", "name", "breaker", "calls", "errors", "error_rate", "latency_p50_ms", "latency_p99_ms", "in_flight"} {
		if _, ok := m[k]; !ok {
			t.Errorf("Health JSON %s lacks %q", js, k)
		}
	}

	var none *resilient.Clients
	if _, ok := none.Get("a"); ok || len(none.Health()) != 0 {
		t.Error("a nil Clients is not empty")
	}

	bad := append(cfgs[:1:1], insurance.Config{Code: "c", BaseURL: fake.srv.URL, Adapter: "soap"}.Default())
	if _, err := resilient.NewClients(bad, factories, resilient.Options{}); err == nil {
		t.Error("NewClients accepted an unknown adapter")
	}
	if _, err := resilient.NewClients(append(cfgs, cfgs[0]), factories, resilient.Options{}); err == nil {
		t.Error("NewClients accepted a duplicate code")
	}
	if _, err := resilient.NewClient(insurance.Config{Code: "x"}, nil, resilient.Options{}); err == nil {
		t.Error("NewClient accepted an invalid config")
	}
}
