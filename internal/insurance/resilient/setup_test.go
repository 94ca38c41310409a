package resilient_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/telemetry"

	"github.com/yolda/yolda/internal/insurance"
	"github.com/yolda/yolda/internal/insurance/resilient"
	"github.com/yolda/yolda/internal/insurance/rest"
)

// Modes of the fake insurer.
const (
	modeOK      = "ok"      // answers at once: covered unless the policy starts with REJ
	modeSlow    = "slow"    // answers ok after 150ms
	modeDown    = "down"    // 503
	modeHang    = "hang"    // never answers until the client gives up
	modeGarbage = "garbage" // 200 with a body of the wrong shape
	modeBad     = "bad"     // 400
	modeReset   = "reset"   // closes the connection without an answer
)

// fakeInsurer is an httptest insurer whose behaviour a test switches, and
// which counts what reaches it.
type fakeInsurer struct {
	srv         *httptest.Server
	mode        atomic.Value // string
	hits        atomic.Int64
	inFlight    atomic.Int64
	maxInFlight atomic.Int64
	release     chan struct{} // closed at cleanup: hung handlers return

	mu      sync.Mutex
	headers []http.Header
}

func newFakeInsurer(t *testing.T) *fakeInsurer {
	t.Helper()
	f := &fakeInsurer{release: make(chan struct{})}
	f.mode.Store(modeOK)
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		close(f.release)
		f.srv.Close()
	})
	return f
}

func (f *fakeInsurer) set(mode string) { f.mode.Store(mode) }

func (f *fakeInsurer) serve(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.maxInFlight.Load()
		if n <= m || f.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	f.mu.Lock()
	f.headers = append(f.headers, r.Header.Clone())
	f.mu.Unlock()

	if r.Method != http.MethodPost || r.URL.Path != "/policies/verify" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	var q struct {
		PolicyNumber string `json:"policy_number"`
	}
	if err := json.NewDecoder(r.Body).Decode(&q); err != nil {
		http.Error(w, "bad json", http.StatusBadRequest)
		return
	}
	switch f.mode.Load().(string) {
	case modeSlow:
		select {
		case <-time.After(150 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
	case modeDown:
		http.Error(w, "backend down", http.StatusServiceUnavailable)
		return
	case modeHang:
		select {
		case <-r.Context().Done():
		case <-f.release:
		}
		return
	case modeGarbage:
		w.Write([]byte(`{"covered": "yes", "reference": 42}`))
		return
	case modeBad:
		http.Error(w, "policy_number malformed", http.StatusBadRequest)
		return
	case modeReset:
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if strings.HasPrefix(q.PolicyNumber, "REJ") {
		w.Write([]byte(`{"covered": false, "reference": "chk-2", "coverage": null, "reason": "policy lapsed"}`))
		return
	}
	w.Write([]byte(`{"covered": true, "reference": "chk-1", "coverage": {"max_tow_km": 100, "services": ["tow", "jump_start"]}, "reason": null}`))
}

// fixture is what setup gives a test.
type fixture struct {
	client *resilient.Client
	fake   *fakeInsurer
	reg    *prometheus.Registry
	cfg    insurance.Config
}

// setup builds a client of a fake insurer with quick settings, changed by
// tweak if not nil.
func setup(t *testing.T, tweak func(*insurance.Config), opts ...func(*resilient.Options)) fixture {
	t.Helper()
	fake := newFakeInsurer(t)
	cfg := insurance.Config{
		Code:    "acme",
		BaseURL: fake.srv.URL,
		Timeout: 200 * time.Millisecond,
		Retry: insurance.Retry{
			Attempts:  3,
			BaseDelay: time.Millisecond,
			MaxDelay:  5 * time.Millisecond,
		},
		Breaker:  insurance.Breaker{Failures: 3, OpenFor: 300 * time.Millisecond},
		Bulkhead: 4,
	}.Default()
	if tweak != nil {
		tweak(&cfg)
	}
	adapter, err := rest.New(cfg, rest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { adapter.Close() })
	reg := prometheus.NewRegistry()
	o := resilient.Options{Registerer: reg}
	for _, f := range opts {
		f(&o)
	}
	c, err := resilient.NewClient(cfg, adapter, o)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{client: c, fake: fake, reg: reg, cfg: cfg}
}

func query(policy string) insurance.Query {
	return insurance.Query{PolicyNumber: policy, Plate: "34ABC123", ServiceType: "tow", IncidentAt: time.Now()}
}

func (fx fixture) verify(t *testing.T, policy string) (insurance.Verdict, error) {
	t.Helper()
	return fx.client.Verify(context.Background(), query(policy))
}

// metric returns the value of the series of name whose labels include
// labels (0 if there is none).
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	v, err := telemetry.Sum(reg, name, want)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// eventually polls cond for up to 2s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fakeClock is a clock that moves only when told. Safe for concurrent use.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// logRecorder is a slog handler that keeps every record.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r.Clone())
	return nil
}

func (l *logRecorder) has(level slog.Level, msg string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.records {
		if r.Level == level && r.Message == msg {
			return true
		}
	}
	return false
}

func (l *logRecorder) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.records {
		out = append(out, r.Level.String()+" "+r.Message)
	}
	return out
}
