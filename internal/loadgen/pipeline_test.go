package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// capacityFake is a server whose consumers keep up with capacity
// requests/s and no more: within one step (one login), the requests past
// capacity x step are handled with a 5 s lag, the others with 5 ms. It
// decides by counting, never by the clock, so the verdicts do not depend
// on how fast the machine runs the test.
type capacityFake struct {
	*process
	capacity float64
	step     time.Duration

	mu       sync.Mutex
	logins   int
	inStep   map[string]int // requests per token (one token per step)
	accepted []string
}

func newCapacityFake(t *testing.T, capacity float64, step time.Duration) *capacityFake {
	f := &capacityFake{process: newProcess(t), capacity: capacity, step: step, inStep: map[string]int{}}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", f.srv.Config.Handler)
	mux.HandleFunc("POST /v1/auth/login", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.logins++
		tok := fmt.Sprintf("tok-%d", f.logins)
		f.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]string{"access_token": tok})
	})
	mux.HandleFunc("POST /v1/requests", func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		f.mu.Lock()
		f.inStep[tok]++
		n := f.inStep[tok]
		id := fmt.Sprintf("req_%s_%d", tok, n)
		f.accepted = append(f.accepted, id)
		f.mu.Unlock()
		lag := 0.005
		if float64(n) > f.capacity*f.step.Seconds() {
			lag = 5
		}
		f.lag.WithLabelValues("notify").Observe(lag)
		f.handled.WithLabelValues("EVENTS", "notify", "ack").Inc()
		w.Header().Set("Location", "/v1/requests/"+id)
		w.WriteHeader(http.StatusAccepted)
	})
	f.srv.Config.Handler = mux
	return f
}

func quickOptions(f *capacityFake) PipelineOptions {
	o := DefaultPipelineOptions()
	o.BaseURL = f.srv.URL
	o.OpsURLs = []string{f.srv.URL + "/metrics"}
	o.Step = f.step
	o.Rates = []float64{100, 200, 400, 800}
	o.Resolution = 50
	o.Bisect = 5
	o.MaxInFlight = 100_000 // nothing is missed, however slow the machine
	o.SampleEvery = 10 * time.Millisecond
	o.Settle, o.SettleTimeout = 0, 5*time.Second
	o.OfferSample = 1_000_000
	return o
}

// The ladder climbs until a consumer falls behind, then bisects between
// the last rate that held and the first that failed.
func TestPipelineFindsCapacity(t *testing.T) {
	t.Parallel()
	f := newCapacityFake(t, 300, 100*time.Millisecond)
	var out strings.Builder
	res, err := RunPipeline(t.Context(), quickOptions(f), &out)
	if err != nil {
		t.Fatal(err)
	}
	// 100 and 200 hold, 400 fails (a quarter of its requests lag 5 s);
	// then 300 holds (exactly at capacity), 350 fails, and 300..350 is
	// within the resolution.
	var got []string
	for _, st := range res.Steps {
		got = append(got, fmt.Sprintf("%.0f:%v", st.Rate, st.Holds))
	}
	want := "100:true 200:true 400:false 300:true 350:false"
	if strings.Join(got, " ") != want {
		t.Fatalf("steps %v, want %s\n%s", got, want, out.String())
	}
	if res.Best == nil || res.Best.Rate != 300 || res.FirstFailed != 350 {
		t.Fatalf("best %+v, first failed %v; want 300 and 350", res.Best, res.FirstFailed)
	}
	fail := res.Steps[2]
	if len(fail.Why) != 1 || !strings.Contains(fail.Why[0], "notify lag p99") {
		t.Errorf("400/s failed for %q, want the notify lag", fail.Why)
	}
	best := res.Best
	if q := best.Lag["notify"]; q.N != 30 || q.P99 > 10*time.Millisecond {
		t.Errorf("notify lag at 300/s %+v, want 30 observations under 10 ms", q)
	}
	if best.Arrivals.Accepted != 30 || best.Arrivals.Failed() != 0 {
		t.Errorf("300/s accepted %d, failed %d; want 30 and 0", best.Arrivals.Accepted, best.Arrivals.Failed())
	}
	if n := strings.Count(out.String(), "\nstep ") + 1; n != len(res.Steps) {
		t.Errorf("%d step lines printed, want %d:\n%s", n, len(res.Steps), out.String())
	}
	row := res.Summary("fake")
	if !strings.Contains(row, "**300/s** (350/s failed)") {
		t.Errorf("summary %q does not give 300/s", row)
	}
	for _, table := range []struct{ header, row string }{
		{SummaryHeader, row},
		{StepsHeader, fail.StepRow("fake")},
	} {
		header := strings.SplitN(table.header, "\n", 2)[0]
		if strings.Count(table.row, "|") != strings.Count(header, "|") {
			t.Errorf("row %q has a different column count than %q", table.row, header)
		}
	}
}

// offersFake answers first offers for the ids it is given.
type offersFake func(id string) (time.Duration, bool)

func (f offersFake) FirstOffers(_ context.Context, ids []string) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for _, id := range ids {
		if d, ok := f(id); ok {
			out[id] = d
		}
	}
	return out, nil
}

// A step holds only if 99 % of the sampled requests got their first offer
// within the bound; a request with none counts as slower than any.
func TestPipelineFirstOffers(t *testing.T) {
	t.Parallel()
	f := newCapacityFake(t, 1e9, 100*time.Millisecond)
	o := quickOptions(f)
	o.Rates = []float64{1000, 2000}
	o.Bisect = 0
	o.OfferSample = 50 // 1000/s x 0.1 s = 100 arrivals: every 2nd looked up
	// At 1000/s (tok-1) every request gets an offer in 20 ms; at 2000/s
	// (tok-2) one in ten gets none.
	var mu sync.Mutex
	var asked []string
	o.FirstOffers = offersFake(func(id string) (time.Duration, bool) {
		mu.Lock()
		asked = append(asked, id)
		mu.Unlock()
		var n int
		fmt.Sscanf(id[strings.LastIndexByte(id, '_')+1:], "%d", &n)
		if strings.HasPrefix(id, "req_tok-2_") && n%10 == 0 {
			return 0, false
		}
		return 20 * time.Millisecond, true
	})
	res, err := RunPipeline(t.Context(), o, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Steps) != 2 {
		t.Fatalf("%d steps, want 2", len(res.Steps))
	}
	first, second := res.Steps[0], res.Steps[1]
	if !first.Holds || first.FirstOffer.N != 50 || first.NoOffer != 0 || first.FirstOffer.P99 != 20*time.Millisecond {
		t.Errorf("1000/s: holds %v, first offer %+v, none %d; want a hold, 50 sampled at 20 ms", first.Holds, first.FirstOffer, first.NoOffer)
	}
	if second.Holds || !second.FirstOffer.P99Inf || second.NoOffer == 0 {
		t.Errorf("2000/s: holds %v, first offer %+v, none %d; want a failure with requests without an offer", second.Holds, second.FirstOffer, second.NoOffer)
	}
	if len(asked) != first.FirstOffer.N+second.FirstOffer.N {
		t.Errorf("%d ids asked about, want %d", len(asked), first.FirstOffer.N+second.FirstOffer.N)
	}
}

func TestJudge(t *testing.T) {
	t.Parallel()
	o := DefaultPipelineOptions()
	ok := func() StepResult {
		return StepResult{
			Rate:     1000,
			Arrivals: ArrivalsResult{Scheduled: 10000, Sent: 10000, Accepted: 10000},
			Lag:      map[string]Quantiles{"notify": {N: 100, P50: 5 * time.Millisecond, P99: 40 * time.Millisecond}},
			// 3,000 rows/s relayed: up to 1,500 of wobble is allowed.
			Backlogs: []Growth{{Name: "outbox", First: 200, Last: 1600, PerSec: 3000}},
			Drained:  true,
		}
	}
	tests := []struct {
		name   string
		change func(*StepResult)
		why    string // "" holds
	}{
		{"keeps up", func(*StepResult) {}, ""},
		{"under 0.1% lost", func(s *StepResult) { s.Arrivals.Missed, s.Arrivals.Sent, s.Arrivals.Accepted = 9, 9991, 9991 }, ""},
		{"0.1% missed", func(s *StepResult) { s.Arrivals.Missed, s.Arrivals.Sent, s.Arrivals.Accepted = 10, 9990, 9990 }, "not accepted"},
		{"refused", func(s *StepResult) { s.Arrivals.Accepted = 9000 }, "not accepted"},
		{"lag p99 at the bound", func(s *StepResult) { s.Lag["notify"] = Quantiles{N: 1, P99: time.Second} }, "notify lag"},
		{"lag past the histogram", func(s *StepResult) { s.Lag["notify"] = Quantiles{N: 1, P99: 100 * time.Millisecond, P99Inf: true} }, "notify lag"},
		{"outbox grows", func(s *StepResult) { s.Backlogs[0].Last = 1800 }, "outbox grew"},
		{"a stalled consumer grows by little", func(s *StepResult) {
			s.Backlogs = append(s.Backlogs, Growth{Name: "pending dispatch", First: 0, Last: 60, PerSec: 0})
		}, "pending dispatch grew"},
		{"small counts are noise", func(s *StepResult) {
			s.Backlogs = append(s.Backlogs, Growth{Name: "pending notify", First: 0, Last: 50, PerSec: 0})
		}, ""},
		{"not drained", func(s *StepResult) { s.Drained = false }, "not drained"},
	}
	for _, tt := range tests {
		st := ok()
		tt.change(&st)
		st.judge(o)
		switch {
		case tt.why == "" && !st.Holds:
			t.Errorf("%s: fails for %q, want a hold", tt.name, st.Why)
		case tt.why != "" && (st.Holds || len(st.Why) != 1 || !strings.Contains(st.Why[0], tt.why)):
			t.Errorf("%s: holds %v for %q, want one reason with %q", tt.name, st.Holds, st.Why, tt.why)
		}
	}
}

func TestSeriesThirds(t *testing.T) {
	t.Parallel()
	var s series
	for i := range 60 {
		s.add(time.Duration(i)*time.Second, float64(i))
	}
	first, last, ok := s.thirds(60 * time.Second)
	if !ok || first != 9.5 || last != 49.5 {
		t.Errorf("thirds %v %v %v, want 9.5 49.5", first, last, ok)
	}
	if _, _, ok := (series{}).thirds(time.Minute); ok {
		t.Error("an empty series has no thirds")
	}
}

// When the first step already fails, the search bisects below it, down to
// a quarter of the failed rate, however coarse the resolution asked for.
func TestPipelineBelowTheLadder(t *testing.T) {
	t.Parallel()
	f := newCapacityFake(t, 40, 100*time.Millisecond)
	o := quickOptions(f)
	o.Rates = []float64{100, 200}
	o.Resolution = 500
	var out strings.Builder
	res, err := RunPipeline(t.Context(), o, &out)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, st := range res.Steps {
		got = append(got, fmt.Sprintf("%g:%v", st.Rate, st.Holds))
	}
	// 100 (10 requests) and 50 (5) pass the 4 the fake keeps up with, 25
	// (2) and 37.5 (3) do not.
	if want := "100:false 50:false 25:true 37.5:true"; strings.Join(got, " ") != want {
		t.Fatalf("steps %v, want %s\n%s", got, want, out.String())
	}
	if res.Best == nil || res.Best.Rate != 37.5 || res.FirstFailed != 50 {
		t.Errorf("best %+v, first failed %v; want 37.5 and 50", res.Best, res.FirstFailed)
	}
}
