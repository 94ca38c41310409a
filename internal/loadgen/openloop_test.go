package loadgen

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func arrivalsTo(srv *httptest.Server) Arrivals {
	return Arrivals{
		Client: newClient(64, nil), URL: srv.URL + "/v1/requests", Tokens: []string{"t1", "t2"},
		Rate: 2000, Duration: 100 * time.Millisecond, MaxInFlight: 1000, Seed: 7,
	}
}

// An arrival that finds every slot taken is missed, not sent late: with a
// server that answers nothing until the schedule is over, exactly
// MaxInFlight requests go out.
func TestArrivalsCountsMissed(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var seen atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		<-release
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	a := arrivalsTo(srv)
	a.MaxInFlight = 3
	a.scheduled = func() { close(release) }

	res, err := a.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := int(a.Rate * a.Duration.Seconds())
	if res.Scheduled != want || res.Sent != 3 || res.Missed != want-3 || res.Accepted != 3 {
		t.Errorf("scheduled %d sent %d missed %d accepted %d; want %d, 3, %d, 3", res.Scheduled, res.Sent, res.Missed, res.Accepted, want, want-3)
	}
	if got := seen.Load(); got != 3 {
		t.Errorf("server saw %d requests, want 3", got)
	}
	if res.Failed() != want-3 {
		t.Errorf("failed %d, want %d", res.Failed(), want-3)
	}
}

// Every arrival is sent, each answer counted by its status, the sampled
// ids are the server's, and the bodies are valid and where asked.
func TestArrivalsCountsAndSamples(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var n int
	ids := map[string]bool{}
	var bad []string
	tokens := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s Submission
		err := json.NewDecoder(r.Body).Decode(&s)
		mu.Lock()
		defer mu.Unlock()
		n++
		tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]++
		switch {
		case err != nil:
			bad = append(bad, err.Error())
		case s.Location.Lat < Istanbul.MinLat || s.Location.Lat > Istanbul.MaxLat || s.Location.Lng < Istanbul.MinLng || s.Location.Lng > Istanbul.MaxLng:
			bad = append(bad, fmt.Sprintf("location %v,%v outside İstanbul", s.Location.Lat, s.Location.Lng))
		case s.Location.Province != "İstanbul":
			bad = append(bad, "province "+s.Location.Province)
		}
		if n%10 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		id := fmt.Sprintf("req_%d", n)
		ids[id] = true
		w.Header().Set("Location", "/v1/requests/"+id)
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	a := arrivalsTo(srv)
	area := Istanbul
	a.Area = &area
	a.SampleEvery = 5

	res, err := a.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, b := range bad {
		t.Error(b)
	}
	want := int(a.Rate * a.Duration.Seconds())
	if res.Scheduled != want || res.Sent != want || res.Missed != 0 || n != want {
		t.Fatalf("scheduled %d sent %d missed %d, server saw %d; want all %d", res.Scheduled, res.Sent, res.Missed, n, want)
	}
	if res.Statuses[503] != want/10 || res.Accepted != want-want/10 {
		t.Errorf("accepted %d, 503s %d; want %d and %d", res.Accepted, res.Statuses[503], want-want/10, want/10)
	}
	if tokens["t1"] != want/2 || tokens["t2"] != want/2 {
		t.Errorf("tokens used %v, want each %d times", tokens, want/2)
	}
	// One arrival in 5 is sampled, and those that were accepted report
	// the id the server gave them.
	if len(res.Sampled) == 0 || len(res.Sampled) > want/5 {
		t.Errorf("%d sampled, want 1 to %d", len(res.Sampled), want/5)
	}
	seen := map[string]bool{}
	for _, id := range res.Sampled {
		if !ids[id] || seen[id] {
			t.Errorf("sampled id %q: not the server's, or twice", id)
		}
		seen[id] = true
	}
	if !(res.P50 > 0 && res.P50 <= res.P90 && res.P90 <= res.P99 && res.P99 <= res.Max) {
		t.Errorf("percentiles p50 %v p90 %v p99 %v max %v", res.P50, res.P90, res.P99, res.Max)
	}
}

func TestArrivalsRejectsBadOptions(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	for name, change := range map[string]func(*Arrivals){
		"no rate":      func(a *Arrivals) { a.Rate = 0 },
		"no duration":  func(a *Arrivals) { a.Duration = 0 },
		"no in flight": func(a *Arrivals) { a.MaxInFlight = 0 },
		"no token":     func(a *Arrivals) { a.Tokens = nil },
	} {
		a := arrivalsTo(srv)
		change(&a)
		if _, err := a.Run(t.Context()); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
