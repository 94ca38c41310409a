package mockinsurer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/insurance/mockinsurer"
)

// start serves m over real HTTP. Cleanup closes the mock before the test
// server, as httptest.Server.Close waits for handlers, hung ones included.
func start(t *testing.T, b mockinsurer.Behaviour) (*mockinsurer.Server, *httptest.Server) {
	t.Helper()
	m := mockinsurer.New(b)
	ts := httptest.NewServer(m)
	t.Cleanup(func() {
		m.Close()
		ts.Close()
	})
	return m, ts
}

type result struct {
	status int
	header http.Header
	body   []byte
}

// verify posts a verify request for policy; hdr is header name, value pairs.
func verify(ctx context.Context, c *http.Client, base, policy string, hdr ...string) (result, error) {
	body := fmt.Sprintf(`{"policy_number":%q,"plate":"34ABC123","service_type":"tow","incident_at":"2026-11-26T06:00:00Z"}`, policy)
	return post(ctx, c, base+"/policies/verify", body, hdr...)
}

func post(ctx context.Context, c *http.Client, u, body string, hdr ...string) (result, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		return result{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(c, req)
}

func do(c *http.Client, req *http.Request) (result, error) {
	resp, err := c.Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: b}, err
}

func mustVerify(t *testing.T, c *http.Client, base, policy string, hdr ...string) result {
	t.Helper()
	r, err := verify(t.Context(), c, base, policy, hdr...)
	if err != nil {
		t.Fatalf("verify %s: %v", policy, err)
	}
	return r
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// answer is the verify answer as a strict client reads it.
type answer struct {
	Covered   *bool   `json:"covered"`
	Reference *string `json:"reference"`
	Coverage  *struct {
		MaxTowKm *int     `json:"max_tow_km"`
		Services []string `json:"services"`
	} `json:"coverage"`
	Reason *string `json:"reason"`
}

// decodeAnswer fails on anything but a well-formed verify answer.
func decodeAnswer(body []byte) (answer, error) {
	var a answer
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return a, err
	}
	switch {
	case a.Covered == nil || a.Reference == nil:
		return a, errors.New("covered or reference missing")
	case *a.Covered && (a.Coverage == nil || a.Coverage.MaxTowKm == nil || a.Coverage.Services == nil):
		return a, errors.New("covered without coverage")
	case !*a.Covered && a.Reason == nil:
		return a, errors.New("not covered without a reason")
	}
	return a, nil
}

var refPattern = regexp.MustCompile(`^ANA-[0-9A-Z]{10}$`)

func TestVerifyCovered(t *testing.T) {
	t.Parallel()
	m, ts := start(t, mockinsurer.Behaviour{})
	r := mustVerify(t, ts.Client(), ts.URL, "POL-123456")
	if r.status != http.StatusOK {
		t.Fatalf("status %d, body %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	a, err := decodeAnswer(r.body)
	if err != nil {
		t.Fatalf("%v in %s", err, r.body)
	}
	if !*a.Covered || !refPattern.MatchString(*a.Reference) || *a.Coverage.MaxTowKm != 100 {
		t.Errorf("answer %s", r.body)
	}
	want := []string{"tow", "jump_start", "flat_tire", "fuel_delivery", "lockout", "winch"}
	if !slices.Equal(a.Coverage.Services, want) {
		t.Errorf("services %v, want %v", a.Coverage.Services, want)
	}
	// The contract shows "reason": null, not an absent field.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &raw); err != nil || string(raw["reason"]) != "null" {
		t.Errorf("reason %s, want null", raw["reason"])
	}
	eventually(t, "the handler to return", func() bool { return m.Stats().InFlight == 0 })
	if s := m.Stats(); s.Calls != 1 || s.OK != 1 || s.NotCovered != 0 || s.InFlight != 0 || s.MaxInFlight != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestPolicyPrefixes(t *testing.T) {
	t.Parallel()
	m, ts := start(t, mockinsurer.Behaviour{})
	for _, tc := range []struct {
		policy   string
		covered  bool
		maxTowKm int
		tow      bool
	}{
		{"REJ-1", false, 0, false},
		{"NOTOW-1", true, 0, false},
		{"SHORT-1", true, 10, true},
		{"rej-1", true, 100, true}, // prefixes are case-sensitive
		{"POL-REJ", true, 100, true},
	} {
		r := mustVerify(t, ts.Client(), ts.URL, tc.policy)
		a, err := decodeAnswer(r.body)
		if r.status != http.StatusOK || err != nil {
			t.Errorf("%s: status %d, %v in %s", tc.policy, r.status, err, r.body)
			continue
		}
		if *a.Covered != tc.covered || !refPattern.MatchString(*a.Reference) {
			t.Errorf("%s: %s", tc.policy, r.body)
			continue
		}
		if !tc.covered {
			if a.Coverage != nil || *a.Reason != "policy not found or lapsed" {
				t.Errorf("%s: %s", tc.policy, r.body)
			}
			continue
		}
		if *a.Coverage.MaxTowKm != tc.maxTowKm || slices.Contains(a.Coverage.Services, "tow") != tc.tow || a.Reason != nil {
			t.Errorf("%s: %s", tc.policy, r.body)
		}
	}
	if s := m.Stats(); s.OK != 5 || s.NotCovered != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	m, ts := start(t, mockinsurer.Behaviour{Latency: time.Hour}) // 400s do not wait
	bodies := []string{
		`{`,
		`not json`,
		`{}`,
		`{"policy_number": "  "}`,
		`{"policy_number": 12}`,
		`{"policy_number": "P1", "incident_at": "yesterday"}`,
		`{"policy_number": "P1"} {"policy_number": "P2"}`,
	}
	for _, body := range bodies {
		r, err := post(t.Context(), ts.Client(), ts.URL+"/policies/verify", body)
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Error string }
		if r.status != http.StatusBadRequest || json.Unmarshal(r.body, &e) != nil || e.Error == "" {
			t.Errorf("%s: status %d, body %s", body, r.status, r.body)
		}
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, ts.URL+"/policies/verify", nil)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := do(ts.Client(), req); err != nil || r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, %v", r.status, err)
	}
	if s := m.Stats(); s.Calls != int64(len(bodies)) || s.Rejected != int64(len(bodies)) || s.OK != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestLatencyAndJitter(t *testing.T) {
	t.Parallel()
	_, ts := start(t, mockinsurer.Behaviour{Latency: 40 * time.Millisecond, Jitter: 20 * time.Millisecond})
	for range 5 {
		began := time.Now()
		mustVerify(t, ts.Client(), ts.URL, "POL-1")
		// Only the lower bound is asserted: a loaded machine may add any
		// amount on top.
		if d := time.Since(began); d < 20*time.Millisecond {
			t.Errorf("answered after %s, want at least 20ms", d)
		}
	}
}

func TestLatencyWaitEndsWhenClientGivesUp(t *testing.T) {
	t.Parallel()
	m, ts := start(t, mockinsurer.Behaviour{Latency: time.Hour})
	c := &http.Client{Transport: ts.Client().Transport, Timeout: 100 * time.Millisecond}
	if _, err := verify(t.Context(), c, ts.URL, "POL-1"); err == nil {
		t.Fatal("want a timeout")
	}
	eventually(t, "the handler to return", func() bool { return m.Stats().InFlight == 0 })
	if s := m.Stats(); s.Abandoned != 1 || s.OK != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestErrorRateIsSeededAndRoughlyHonoured(t *testing.T) {
	t.Parallel()
	const calls, rate = 1000, 0.2
	outcomes := func() (string, mockinsurer.Stats) {
		m, ts := start(t, mockinsurer.Behaviour{ErrorRate: rate, Seed: 7})
		var seq strings.Builder
		for range calls {
			r := mustVerify(t, ts.Client(), ts.URL, "POL-1")
			switch r.status {
			case http.StatusOK:
				seq.WriteByte('.')
			case http.StatusInternalServerError:
				seq.WriteByte('x')
			default:
				t.Fatalf("status %d", r.status)
			}
		}
		return seq.String(), m.Stats()
	}
	a, stats := outcomes()
	b, _ := outcomes()
	if a != b {
		t.Error("the same seed gave different outcomes")
	}
	errs := strings.Count(a, "x")
	// Binomial(1000, 0.2) has a standard deviation of about 13.
	if errs < 150 || errs > 250 {
		t.Errorf("%d errors in %d calls, want about %d", errs, calls, int(calls*rate))
	}
	if stats.Errors != int64(errs) || stats.OK != int64(calls-errs) || stats.Calls != calls {
		t.Errorf("stats %+v, counted %d errors", stats, errs)
	}
}

func TestDownAlternates503AndDroppedConnections(t *testing.T) {
	t.Parallel()
	m, ts := start(t, mockinsurer.Behaviour{Mode: mockinsurer.ModeDown, Latency: time.Hour})
	c := ts.Client()
	for i := range 6 {
		r, err := verify(t.Context(), c, ts.URL, "POL-1")
		if i%2 == 0 {
			if err != nil || r.status != http.StatusServiceUnavailable || len(r.body) == 0 {
				t.Errorf("call %d: status %d, err %v; want a 503 with a body", i+1, r.status, err)
			}
			continue
		}
		var ue *url.Error
		if !errors.As(err, &ue) {
			t.Errorf("call %d: status %d, err %v; want a transport error", i+1, r.status, err)
		}
	}
	// The client can see an answer before its handler has returned.
	eventually(t, "the handlers to return", func() bool { return m.Stats().InFlight == 0 })
	if s := m.Stats(); s.Errors != 6 || s.Calls != 6 || s.InFlight != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestDownStyles(t *testing.T) {
	t.Parallel()
	_, ts := start(t, mockinsurer.Behaviour{Mode: mockinsurer.ModeDown, DownStyle: mockinsurer.DownClose})
	for i := range 3 {
		if r, err := verify(t.Context(), ts.Client(), ts.URL, "POL-1"); err == nil {
			t.Errorf("close, call %d: status %d, want a transport error", i+1, r.status)
		}
	}
	_, ts = start(t, mockinsurer.Behaviour{Mode: mockinsurer.ModeDown, DownStyle: mockinsurer.Down503})
	for i := range 3 {
		if r, err := verify(t.Context(), ts.Client(), ts.URL, "POL-1"); err != nil || r.status != http.StatusServiceUnavailable {
			t.Errorf("503, call %d: status %d, err %v", i+1, r.status, err)
		}
	}
}

func TestHangEndsWhenClientGivesUp(t *testing.T) {
	t.Parallel()
	m, ts := start(t, mockinsurer.Behaviour{Mode: mockinsurer.ModeHang})
	c := &http.Client{Transport: ts.Client().Transport, Timeout: 150 * time.Millisecond}
	began := time.Now()
	if r, err := verify(t.Context(), c, ts.URL, "POL-1"); err == nil {
		t.Fatalf("status %d, want a timeout", r.status)
	}
	if d := time.Since(began); d < 150*time.Millisecond {
		t.Errorf("gave up after %s", d)
	}
	eventually(t, "the hung handler to return", func() bool { return m.Stats().InFlight == 0 })
	if s := m.Stats(); s.Hung != 1 || s.Calls != 1 || s.MaxInFlight != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestHangEndsWhenServerCloses(t *testing.T) {
	t.Parallel()
	m, ts := start(t, mockinsurer.Behaviour{Mode: mockinsurer.ModeHang})
	errc := make(chan error, 1)
	go func() {
		_, err := verify(context.Background(), ts.Client(), ts.URL, "POL-1")
		errc <- err
	}()
	eventually(t, "the call to hang", func() bool { return m.Stats().InFlight == 1 })
	m.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Error("a hung call released by Close got an answer; want a dropped connection")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not release the hung call")
	}
	eventually(t, "the hung handler to return", func() bool { return m.Stats().InFlight == 0 })
}

func TestGarbageRotates(t *testing.T) {
	t.Parallel()
	m, ts := start(t, mockinsurer.Behaviour{Mode: mockinsurer.ModeGarbage})
	seen := map[string]bool{}
	for i := range 12 {
		r := mustVerify(t, ts.Client(), ts.URL, "POL-1")
		if r.status != http.StatusOK {
			t.Errorf("call %d: status %d", i+1, r.status)
		}
		if _, err := decodeAnswer(r.body); err == nil {
			t.Errorf("call %d: %s reads as a valid answer", i+1, r.body)
		}
		seen[string(r.body)] = true
	}
	for _, want := range []string{`{"covered":"yes"}`, `[]`} {
		if !seen[want] {
			t.Errorf("never answered %s", want)
		}
	}
	if len(seen) < 5 {
		t.Errorf("only %d distinct bodies", len(seen))
	}
	if s := m.Stats(); s.Garbage != 12 || s.OK != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	const key, token = "k-8f2a", "s3cret-token"
	m, ts := start(t, mockinsurer.Behaviour{APIKey: key, Bearer: token})
	for _, tc := range []struct {
		name string
		hdr  []string
		want int
	}{
		{"none", nil, 401},
		{"key only", []string{"X-Api-Key", key}, 401},
		{"bearer only", []string{"Authorization", "Bearer " + token}, 401},
		{"wrong key", []string{"X-Api-Key", "nope", "Authorization", "Bearer " + token}, 401},
		{"wrong token", []string{"X-Api-Key", key, "Authorization", "Bearer nope"}, 401},
		{"wrong scheme", []string{"X-Api-Key", key, "Authorization", "Basic " + token}, 401},
		{"both", []string{"X-Api-Key", key, "Authorization", "Bearer " + token}, 200},
		{"scheme case", []string{"X-Api-Key", key, "Authorization", "bearer " + token}, 200},
	} {
		r := mustVerify(t, ts.Client(), ts.URL, "POL-1", tc.hdr...)
		if r.status != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, r.status, tc.want)
		}
		if r.status == 401 && r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", tc.name)
		}
	}
	if s := m.Stats(); s.Rejected != 6 || s.OK != 2 {
		t.Errorf("stats %+v", s)
	}

	// /control needs no credentials and does not show them.
	r, err := do(ts.Client(), mustRequest(t, http.MethodGet, ts.URL+"/control", ""))
	if err != nil || r.status != 200 {
		t.Fatalf("GET /control: %d, %v", r.status, err)
	}
	if bytes.Contains(r.body, []byte(token)) || bytes.Contains(r.body, []byte(key)) {
		t.Errorf("/control shows a credential: %s", r.body)
	}

	_, ts = start(t, mockinsurer.Behaviour{Bearer: token})
	if r := mustVerify(t, ts.Client(), ts.URL, "POL-1"); r.status != 401 {
		t.Errorf("bearer only, none sent: %d", r.status)
	}
	if r := mustVerify(t, ts.Client(), ts.URL, "POL-1", "Authorization", "Bearer "+token); r.status != 200 {
		t.Errorf("bearer only, sent: %d", r.status)
	}
}

func mustRequest(t *testing.T, method, u, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

type view struct {
	Mode      string            `json:"mode"`
	Latency   string            `json:"latency"`
	Jitter    string            `json:"jitter"`
	ErrorRate float64           `json:"error_rate"`
	DownStyle string            `json:"down_style"`
	Seed      uint64            `json:"seed"`
	Auth      string            `json:"auth"`
	Stats     mockinsurer.Stats `json:"stats"`
}

// control posts body to /control with a short timeout, since it must answer
// whatever the mode.
func control(t *testing.T, base, body string) (int, view, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	method := http.MethodPost
	if body == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, base+"/control", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r, err := do(http.DefaultClient, req)
	if err != nil {
		t.Fatalf("/control %s: %v", body, err)
	}
	var v view
	if r.status == 200 {
		if err := json.Unmarshal(r.body, &v); err != nil {
			t.Fatalf("/control %s: %v in %s", body, err, r.body)
		}
	}
	return r.status, v, string(r.body)
}

func TestControlWhileRunning(t *testing.T) {
	t.Parallel()
	m, ts := start(t, mockinsurer.Behaviour{Mode: mockinsurer.ModeHang, Seed: 3})

	// A call hangs; /control still answers.
	hungCtx, release := context.WithCancel(t.Context())
	defer release()
	go verify(hungCtx, ts.Client(), ts.URL, "POL-1")
	eventually(t, "the call to hang", func() bool { return m.Stats().InFlight == 1 })

	status, v, body := control(t, ts.URL, "")
	if status != 200 || v.Mode != "hang" || v.Stats.Hung != 1 || v.Stats.InFlight != 1 || v.Seed != 3 || v.Auth != "none" {
		t.Fatalf("GET /control in hang mode: %d %s", status, body)
	}
	status, v, body = control(t, ts.URL, `{"mode": "ok", "latency": "5ms", "jitter": "1ms"}`)
	if status != 200 || v.Mode != "ok" || v.Latency != "5ms" || v.Jitter != "1ms" || v.DownStyle != "alternate" {
		t.Fatalf("POST /control: %d %s", status, body)
	}
	if r := mustVerify(t, ts.Client(), ts.URL, "POL-1"); r.status != 200 {
		t.Errorf("after switching to ok: %d", r.status)
	}
	// The call that arrived in hang mode stays hung, as on a real insurer.
	if s := m.Stats(); s.InFlight != 1 {
		t.Errorf("stats %+v", s)
	}
	release()
	eventually(t, "the hung handler to return", func() bool { return m.Stats().InFlight == 0 })

	// Partial update: only the mode changes.
	status, v, body = control(t, ts.URL, `{"mode": "down", "down_style": "503"}`)
	if status != 200 || v.Mode != "down" || v.Latency != "5ms" {
		t.Fatalf("POST /control: %d %s", status, body)
	}
	if r := mustVerify(t, ts.Client(), ts.URL, "POL-1"); r.status != 503 {
		t.Errorf("after switching to down: %d", r.status)
	}
	if status, _, body := control(t, ts.URL, `{"error_rate": 0.25}`); status != 200 {
		t.Fatalf("POST /control in down mode: %d %s", status, body)
	}
	want := mockinsurer.Behaviour{Mode: "down", Latency: 5 * time.Millisecond, Jitter: time.Millisecond,
		ErrorRate: 0.25, DownStyle: "503", Seed: 3}
	if got := m.Behaviour(); got != want {
		t.Errorf("Behaviour() = %+v, want %+v", got, want)
	}

	for _, tc := range []struct{ body, mention string }{
		{`{"mode": "sideways"}`, "mode"},
		{`{"mode": ""}`, "mode"},
		{`{"latency": "fast"}`, "latency"},
		{`{"latency": 50}`, "latency"},
		{`{"latency": "-5ms"}`, "latency"},
		{`{"jitter": "-1s"}`, "jitter"},
		{`{"error_rate": 1.5}`, "error_rate"},
		{`{"error_rate": "lots"}`, "error_rate"},
		{`{"down_style": "sometimes"}`, "down_style"},
		{`{"seed": 0}`, "seed"},
		{`{"errorrate": 0.1}`, "errorrate"},
		{`{"mode": "ok"`, "bad control body"},
		{`{"mode": "ok", "latency": "fast"}`, "latency"}, // and the mode stays down
	} {
		status, _, body := control(t, ts.URL, tc.body)
		var e struct{ Error string }
		if status != 400 || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, tc.mention) {
			t.Errorf("%s: %d %s; want a 400 that mentions %q", tc.body, status, body, tc.mention)
		}
	}
	if got := m.Behaviour(); got != want {
		t.Errorf("after bad updates Behaviour() = %+v, want %+v", got, want)
	}
}

func TestSetAndSeed(t *testing.T) {
	t.Parallel()
	m := mockinsurer.New(mockinsurer.Behaviour{})
	b := m.Behaviour()
	if b.Mode != "ok" || b.DownStyle != "alternate" || b.Seed == 0 {
		t.Errorf("defaults %+v", b)
	}
	m.Set(mockinsurer.Behaviour{Mode: mockinsurer.ModeGarbage})
	if got := m.Behaviour(); got.Seed != b.Seed || got.Mode != "garbage" {
		t.Errorf("Set with seed 0 changed the seed: %+v", got)
	}

	refs := func(m *mockinsurer.Server, n int) []string {
		ts := httptest.NewServer(m)
		defer ts.Close()
		var out []string
		for range n {
			a, err := decodeAnswer(mustVerify(t, ts.Client(), ts.URL, "POL-1").body)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, *a.Reference)
		}
		return out
	}
	a, b5 := mockinsurer.New(mockinsurer.Behaviour{Seed: 5}), mockinsurer.New(mockinsurer.Behaviour{Seed: 5})
	if x, y := refs(a, 3), refs(b5, 3); !slices.Equal(x, y) {
		t.Errorf("seed 5 gave %v and %v", x, y)
	}
	a.Set(mockinsurer.Behaviour{Seed: 9})
	if x, y := refs(a, 2), refs(mockinsurer.New(mockinsurer.Behaviour{Seed: 9}), 2); !slices.Equal(x, y) {
		t.Errorf("reseeding to 9 gave %v, a new server %v", x, y)
	}

	for _, bad := range []mockinsurer.Behaviour{{Mode: "slow"}, {ErrorRate: -0.1}, {Latency: -1}, {DownStyle: "x"}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%+v) did not panic", bad)
				}
			}()
			mockinsurer.New(bad)
		}()
	}
}

// syncBuffer is a log destination that a test can read while Run writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestRunServesAndShutsDownDespiteHungCalls(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- mockinsurer.Run(ctx, "127.0.0.1:0", mockinsurer.Behaviour{Latency: time.Millisecond}, log)
	}()

	var addr string
	eventually(t, "the listening line", func() bool {
		for line := range strings.Lines(logs.String()) {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				addr = rec.Addr
				return true
			}
		}
		return false
	})
	if strings.HasSuffix(addr, ":0") {
		t.Fatalf("logged %q, want the bound port", addr)
	}
	base := "http://" + addr
	if r := mustVerify(t, http.DefaultClient, base, "POL-1"); r.status != 200 {
		t.Fatalf("verify: %d", r.status)
	}
	if status, _, body := control(t, base, `{"mode": "hang"}`); status != 200 {
		t.Fatalf("control: %d %s", status, body)
	}
	hung := make(chan error, 1)
	go func() {
		_, err := verify(context.Background(), http.DefaultClient, base, "POL-1")
		hung <- err
	}()
	eventually(t, "the call to hang", func() bool {
		_, v, _ := control(t, base, "")
		return v.Stats.InFlight == 1
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Run waited for the hung call")
	}
	select {
	case err := <-hung:
		if err == nil {
			t.Error("the hung call got an answer")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the hung call was not released")
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	t.Parallel()
	if err := mockinsurer.Run(t.Context(), "127.0.0.1:0", mockinsurer.Behaviour{Mode: "sideways"}, nil); err == nil {
		t.Error("bad mode: no error")
	}
	if err := mockinsurer.Run(t.Context(), "127.0.0.1:99999", mockinsurer.Behaviour{}, nil); err == nil {
		t.Error("bad address: no error")
	}
}

func TestFlags(t *testing.T) {
	t.Parallel()
	parse := func(args ...string) (*string, *mockinsurer.Behaviour, error) {
		fs := flag.NewFlagSet("mock-insurer", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		addr, b := mockinsurer.Flags(fs)
		return addr, b, fs.Parse(args)
	}
	addr, b, err := parse()
	want := mockinsurer.Behaviour{Mode: "ok", Latency: 50 * time.Millisecond, DownStyle: "alternate"}
	if err != nil || *addr != "127.0.0.1:9100" || *b != want {
		t.Errorf("defaults: %q %+v %v", *addr, *b, err)
	}
	addr, b, err = parse("--addr", "127.0.0.1:0", "--mode", "down", "--latency", "1s", "--jitter", "100ms",
		"--error-rate", "0.1", "--down-style", "close", "--seed", "42", "--api-key", "k", "--bearer", "t")
	want = mockinsurer.Behaviour{Mode: "down", Latency: time.Second, Jitter: 100 * time.Millisecond,
		ErrorRate: 0.1, DownStyle: "close", Seed: 42, APIKey: "k", Bearer: "t"}
	if err != nil || *addr != "127.0.0.1:0" || *b != want {
		t.Errorf("all flags: %q %+v %v", *addr, *b, err)
	}
	for _, args := range [][]string{
		{"--mode", "sideways"}, {"--mode", ""}, {"--error-rate", "2"}, {"--error-rate", "x"},
		{"--down-style", "never"}, {"--latency", "soon"},
	} {
		if _, _, err := parse(args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
