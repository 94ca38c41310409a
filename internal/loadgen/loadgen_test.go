package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// The fake server's view of the contract. Pointers tell a missing field
// from a zero one, and decoding rejects unknown fields, as Yolda does.
type wantSubmission struct {
	ServiceType *string       `json:"service_type"`
	Location    *wantLocation `json:"location"`
	Destination *wantLocation `json:"destination"`
	Vehicle     *struct {
		Plate *string `json:"plate"`
		Make  *string `json:"make"`
		Model *string `json:"model"`
		Type  *string `json:"type"`
	} `json:"vehicle"`
	Policy *struct {
		Insurer      *string `json:"insurer"`
		PolicyNumber *string `json:"policy_number"`
	} `json:"policy"`
	Contact *struct {
		Name  *string `json:"name"`
		Phone *string `json:"phone"`
	} `json:"contact"`
	Notes *string `json:"notes"`
}

type wantLocation struct {
	Lat      *float64 `json:"lat"`
	Lng      *float64 `json:"lng"`
	Address  *string  `json:"address"`
	Province *string  `json:"province"`
	District *string  `json:"district"`
}

var (
	platePattern  = regexp.MustCompile(`^[0-9]{2}[A-Z]{1,3}[1-9][0-9]{1,3}$`)
	policyPattern = regexp.MustCompile(`^POL-[0-9]{6}$`)
	phonePattern  = regexp.MustCompile(`^\+90555[0-9]{7}$`)
)

// checkSubmission decodes body strictly and returns every problem found.
func checkSubmission(body []byte, insurers []string) []string {
	var s wantSubmission
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return []string{"decode: " + err.Error()}
	}
	if dec.More() {
		return []string{"trailing data after the body"}
	}
	var bad []string
	fail := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }
	text := func(field string, v *string, required bool, maxLen int) {
		switch {
		case v == nil && required:
			fail("%s missing", field)
		case v == nil:
		case *v == "" || strings.TrimSpace(*v) != *v:
			fail("%s empty or padded: %q", field, *v)
		case utf8.RuneCountInString(*v) > maxLen:
			fail("%s too long", field)
		}
	}
	loc := func(field string, l *wantLocation) {
		switch {
		case l.Lat == nil || *l.Lat < minLat || *l.Lat > maxLat:
			fail("%s.lat outside Turkey", field)
		case l.Lng == nil || *l.Lng < minLng || *l.Lng > maxLng:
			fail("%s.lng outside Turkey", field)
		}
		text(field+".address", l.Address, true, 300)
		text(field+".province", l.Province, true, 80)
		text(field+".district", l.District, true, 80)
	}

	if s.ServiceType == nil || !slices.Contains([]string{"tow", "jump_start", "flat_tire", "fuel_delivery", "lockout", "winch"}, *s.ServiceType) {
		fail("bad service_type")
	}
	if s.Location == nil {
		fail("location missing")
	} else {
		loc("location", s.Location)
	}
	switch {
	case s.Destination != nil:
		loc("destination", s.Destination)
	case s.ServiceType != nil && *s.ServiceType == "tow":
		fail("tow without destination")
	}
	if v := s.Vehicle; v == nil {
		fail("vehicle missing")
	} else {
		if v.Plate == nil || !platePattern.MatchString(*v.Plate) {
			fail("bad plate %v", v.Plate)
		}
		text("vehicle.make", v.Make, false, 64)
		text("vehicle.model", v.Model, false, 64)
		if v.Type == nil || !slices.Contains([]string{"car", "motorcycle", "light_commercial", "heavy"}, *v.Type) {
			fail("bad vehicle.type")
		}
	}
	if p := s.Policy; p == nil {
		fail("policy missing")
	} else {
		if p.Insurer == nil || !slices.Contains(insurers, *p.Insurer) {
			fail("bad insurer")
		}
		if p.PolicyNumber == nil || !policyPattern.MatchString(*p.PolicyNumber) {
			fail("bad policy_number")
		}
	}
	if c := s.Contact; c == nil {
		fail("contact missing")
	} else {
		text("contact.name", c.Name, true, 120)
		if c.Phone == nil || !phonePattern.MatchString(*c.Phone) {
			fail("bad phone")
		}
	}
	text("notes", s.Notes, false, 1000)
	return bad
}

// fakeYolda counts what it answers so a test can hold Run's counts
// against it.
type fakeYolda struct {
	username, password string
	insurers           []string
	throttleEvery      int // answer 429 to every n-th request; 0: never

	mu         sync.Mutex
	logins     int
	total      int
	accepted   int
	statuses   map[int]int
	tokensSeen map[string]int
	problems   []string
}

func newFake(t *testing.T, f *fakeYolda) *httptest.Server {
	t.Helper()
	if f.insurers == nil {
		f.insurers = DefaultInsurers()
	}
	f.statuses = map[int]int{}
	f.tokensSeen = map[string]int{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/auth/login", func(w http.ResponseWriter, r *http.Request) {
		var c struct{ Username, Password string }
		if err := json.NewDecoder(r.Body).Decode(&c); err != nil || c.Username != f.username || c.Password != f.password {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"type":"about:blank","title":"Unauthorized","status":401,"detail":"wrong username or password"}`)
			return
		}
		f.mu.Lock()
		f.logins++
		tok := fmt.Sprintf("tok-%d", f.logins)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600, "role": "customer"})
	})
	mux.HandleFunc("POST /v1/requests", func(w http.ResponseWriter, r *http.Request) {
		var body bytes.Buffer
		_, err := body.ReadFrom(r.Body)
		tok, hasBearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")

		f.mu.Lock()
		defer f.mu.Unlock()
		f.total++
		status := http.StatusAccepted
		switch {
		case !hasBearer || tok == "":
			status = http.StatusUnauthorized
			f.problems = append(f.problems, "no bearer token")
		case err != nil:
			status = http.StatusBadRequest
			f.problems = append(f.problems, "read body: "+err.Error())
		case !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json"):
			status = http.StatusUnsupportedMediaType
			f.problems = append(f.problems, "content type "+r.Header.Get("Content-Type"))
		default:
			if bad := checkSubmission(body.Bytes(), f.insurers); len(bad) > 0 {
				status = http.StatusUnprocessableEntity
				f.problems = append(f.problems, strings.Join(bad, "; ")+": "+body.String())
			} else if f.throttleEvery > 0 && f.total%f.throttleEvery == 0 {
				status = http.StatusTooManyRequests
			}
		}
		f.tokensSeen[tok]++
		if status == http.StatusAccepted {
			f.accepted++
			w.Header().Set("Location", fmt.Sprintf("/v1/requests/req_%d", f.total))
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"id":"req_%d","status":"received"}`, f.total)
			return
		}
		f.statuses[status]++
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"title":%q,"status":%d}`, http.StatusText(status), status)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func (f *fakeYolda) snapshot() (total, accepted int, statuses map[int]int, problems []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.total, f.accepted, maps.Clone(f.statuses), slices.Clone(f.problems)
}

func checkValid(t *testing.T, problems []string) {
	t.Helper()
	for i, p := range problems {
		if i == 5 {
			t.Errorf("... and %d more invalid requests", len(problems)-5)
			break
		}
		t.Errorf("invalid request: %s", p)
	}
}

func checkPercentiles(t *testing.T, r Result) {
	t.Helper()
	if !(r.P50 > 0 && r.P50 <= r.P90 && r.P90 <= r.P99 && r.P99 <= r.Max) {
		t.Errorf("percentiles out of order or not positive: p50 %v p90 %v p99 %v max %v", r.P50, r.P90, r.P99, r.Max)
	}
}

func nonAccepted(r Result) int {
	n := 0
	for _, c := range r.Statuses {
		n += c
	}
	return n
}

func TestRunCountsMatchServer(t *testing.T) {
	t.Parallel()
	f := &fakeYolda{username: "bench", password: "pw", throttleEvery: 7}
	srv := newFake(t, f)

	res, err := Run(t.Context(), Options{
		BaseURL: srv.URL, Username: "bench", Password: "pw",
		Concurrency: 8, Duration: 300 * time.Millisecond, Seed: 42,
	})
	if err != nil {
		t.Fatal(err)
	}
	total, accepted, statuses, problems := f.snapshot()
	checkValid(t, problems)

	// Without warmup every request the server saw was measured.
	if res.Sent != total || res.Accepted != accepted {
		t.Errorf("Run: sent %d accepted %d; server: total %d accepted %d", res.Sent, res.Accepted, total, accepted)
	}
	if res.Statuses[429] != statuses[429] || res.Statuses[429] == 0 {
		t.Errorf("429s: Run %d, server %d; want equal and positive", res.Statuses[429], statuses[429])
	}
	if res.Accepted+nonAccepted(res) != res.Sent {
		t.Errorf("accepted %d + other %v != sent %d", res.Accepted, res.Statuses, res.Sent)
	}
	if res.Statuses[0] != 0 {
		t.Errorf("%d transport errors", res.Statuses[0])
	}
	checkPercentiles(t, res)
	if res.Elapsed < 300*time.Millisecond || res.AcceptedPerSec <= 0 {
		t.Errorf("elapsed %v, accepted/s %v", res.Elapsed, res.AcceptedPerSec)
	}
	if f.logins != 1 {
		t.Errorf("%d logins, want 1", f.logins)
	}
}

func TestRunRequestCap(t *testing.T) {
	t.Parallel()
	f := &fakeYolda{username: "bench", password: "pw", throttleEvery: 10}
	srv := newFake(t, f)

	res, err := Run(t.Context(), Options{
		BaseURL: srv.URL, Username: "bench", Password: "pw",
		Concurrency: 6, Requests: 500, Seed: 7,
	})
	if err != nil {
		t.Fatal(err)
	}
	total, accepted, statuses, problems := f.snapshot()
	checkValid(t, problems)
	if res.Sent != 500 || total != 500 {
		t.Errorf("sent %d, server saw %d; want 500 each", res.Sent, total)
	}
	if res.Accepted != accepted || res.Accepted != 450 || res.Statuses[429] != statuses[429] {
		t.Errorf("Run: accepted %d, 429 %d; server: accepted %d, 429 %d", res.Accepted, res.Statuses[429], accepted, statuses[429])
	}
	checkPercentiles(t, res)
}

// With a fixed rate the split between warmup and measurement is known in
// advance: at 200/s, a 250 ms warmup is exactly slots 0-49.
func TestRunWarmupExcluded(t *testing.T) {
	t.Parallel()
	f := &fakeYolda{username: "bench", password: "pw"}
	srv := newFake(t, f)

	res, err := Run(t.Context(), Options{
		BaseURL: srv.URL, Username: "bench", Password: "pw",
		Concurrency: 8, Rate: 200, Warmup: 250 * time.Millisecond, Duration: 500 * time.Millisecond, Seed: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	total, accepted, _, problems := f.snapshot()
	checkValid(t, problems)
	const warmup = 50
	if res.Sent != total-warmup || res.Accepted != accepted-warmup {
		t.Errorf("Run: sent %d accepted %d; server: total %d accepted %d; want the server's minus %d warmup", res.Sent, res.Accepted, total, accepted, warmup)
	}
	// 100 slots fall in the measured half second; a loaded machine may
	// miss a few at the end, but not most.
	if res.Sent > 100 || res.Sent < 80 {
		t.Errorf("sent %d measured requests, want about 100", res.Sent)
	}
	checkPercentiles(t, res)
}

func TestRunWarmupExcludedClosedLoop(t *testing.T) {
	t.Parallel()
	f := &fakeYolda{username: "bench", password: "pw"}
	srv := newFake(t, f)

	res, err := Run(t.Context(), Options{
		BaseURL: srv.URL, Username: "bench", Password: "pw",
		Concurrency: 4, Warmup: 150 * time.Millisecond, Requests: 200, Seed: 5,
	})
	if err != nil {
		t.Fatal(err)
	}
	total, _, _, problems := f.snapshot()
	checkValid(t, problems)
	if res.Sent != 200 || total <= 200 {
		t.Errorf("sent %d measured, server saw %d; want 200 and more than 200", res.Sent, total)
	}
}

func TestRunTokensRoundRobin(t *testing.T) {
	t.Parallel()
	f := &fakeYolda{username: "bench", password: "pw"}
	srv := newFake(t, f)

	res, err := Run(t.Context(), Options{
		BaseURL: srv.URL, Tokens: []string{"a", "b", "c"},
		Concurrency: 2, Requests: 60,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.logins != 0 {
		t.Errorf("%d logins with tokens given", f.logins)
	}
	// Each worker cycles through the tokens from its own offset, so the
	// spread is even to within one request per worker.
	for _, tok := range []string{"a", "b", "c"} {
		if n := f.tokensSeen[tok]; n < 18 || n > 22 {
			t.Errorf("token %s used %d times of 60 (%v), want about 20", tok, n, f.tokensSeen)
		}
	}
	if res.Accepted != 60 {
		t.Errorf("accepted %d, want 60", res.Accepted)
	}
}

func TestRunBadLogin(t *testing.T) {
	t.Parallel()
	f := &fakeYolda{username: "bench", password: "pw"}
	srv := newFake(t, f)

	_, err := Run(t.Context(), Options{
		BaseURL: srv.URL, Username: "bench", Password: "nope",
		Concurrency: 2, Duration: time.Second,
	})
	if err == nil || !strings.HasPrefix(err.Error(), "login: ") || !strings.Contains(err.Error(), "401") {
		t.Errorf("err = %v, want a login error naming 401", err)
	}
	if total, _, _, _ := f.snapshot(); total != 0 {
		t.Errorf("%d requests sent without a token", total)
	}
}

func TestRunCancel(t *testing.T) {
	t.Parallel()
	f := &fakeYolda{username: "bench", password: "pw"}
	srv := newFake(t, f)

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	began := time.Now()
	res, err := Run(ctx, Options{
		BaseURL: srv.URL, Username: "bench", Password: "pw",
		Concurrency: 4, Duration: time.Minute,
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the context's", err)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("Run took %v after its context ended", took)
	}
	if res.Sent == 0 || res.Statuses[0] != 0 {
		t.Errorf("sent %d, transport errors %d; want a partial result without the cut-off requests", res.Sent, res.Statuses[0])
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	t.Parallel()
	ok := Options{BaseURL: "http://127.0.0.1:1", Username: "u", Concurrency: 1, Duration: time.Second}
	for name, mutate := range map[string]func(*Options){
		"no scheme":     func(o *Options) { o.BaseURL = "127.0.0.1:8080" },
		"no workers":    func(o *Options) { o.Concurrency = 0 },
		"endless":       func(o *Options) { o.Duration = 0 },
		"negative rate": func(o *Options) { o.Rate = -1 },
		"no identity":   func(o *Options) { o.Username = "" },
	} {
		o := ok
		mutate(&o)
		if _, err := Run(t.Context(), o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestRandomSubmissionReproducible(t *testing.T) {
	t.Parallel()
	gen := func(seed uint64) []byte {
		r := rand.New(rand.NewPCG(seed, 0))
		var b bytes.Buffer
		for range 200 {
			s := RandomSubmission(r, nil)
			if err := json.NewEncoder(&b).Encode(s); err != nil {
				t.Fatal(err)
			}
		}
		return b.Bytes()
	}
	if a, b := gen(1), gen(1); !bytes.Equal(a, b) {
		t.Error("same seed gave different submissions")
	}
	if a, b := gen(1), gen(2); bytes.Equal(a, b) {
		t.Error("different seeds gave the same submissions")
	}
	r1, r2 := rand.New(rand.NewPCG(9, 9)), rand.New(rand.NewPCG(9, 9))
	if a, b := RandomSubmission(r1, []string{"x"}), RandomSubmission(r2, []string{"x"}); !reflect.DeepEqual(a, b) {
		t.Errorf("same seed: %+v != %+v", a, b)
	}
}

// Many draws should all be valid and should cover every value the
// contract allows, including the optional parts both present and absent.
func TestRandomSubmissionValidAndVaried(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(11, 0))
	insurers := []string{"anadolu", "mapfre"}
	services, vehicles, usedInsurers := map[string]bool{}, map[string]bool{}, map[string]bool{}
	var withNotes, withoutNotes, optionalDest, noDest int
	for range 5000 {
		s := RandomSubmission(r, insurers)
		body, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if bad := checkSubmission(body, insurers); len(bad) > 0 {
			t.Fatalf("invalid: %v\n%s", bad, body)
		}
		services[s.ServiceType] = true
		vehicles[s.Vehicle.Type] = true
		usedInsurers[s.Policy.Insurer] = true
		if s.Notes != "" {
			withNotes++
		} else {
			withoutNotes++
		}
		if s.ServiceType != "tow" {
			if s.Destination != nil {
				optionalDest++
			} else {
				noDest++
			}
		}
	}
	if len(services) != 6 || len(vehicles) != 4 || len(usedInsurers) != 2 {
		t.Errorf("service types %v, vehicle types %v, insurers %v: want all", services, vehicles, usedInsurers)
	}
	if withNotes == 0 || withoutNotes == 0 || optionalDest == 0 || noDest == 0 {
		t.Errorf("notes %d/%d, optional destination %d/%d: want both kinds", withNotes, withoutNotes, optionalDest, noDest)
	}
}

func TestPrint(t *testing.T) {
	t.Parallel()
	r := Result{
		Sent: 52000, Accepted: 51987, Statuses: map[int]int{429: 10, 0: 3},
		Elapsed: 10 * time.Second, AcceptedPerSec: 5198.7,
		P50: 8100 * time.Microsecond, P90: 12 * time.Millisecond, P99: 18300 * time.Microsecond, Max: 40200 * time.Microsecond,
		Concurrency: 64, Duration: 10 * time.Second, Warmup: 2 * time.Second,
	}
	var b strings.Builder
	r.Print(&b)
	want := "intake: 64 connections, 10s (+2s warmup)\n" +
		"sent 52000  accepted 51987 (202)  other: errors=3 429=10\n" +
		"accepted/s 5198.7 (over 10.00s)   latency p50 8.1ms  p90 12.0ms  p99 18.3ms  max 40.2ms\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestFlags(t *testing.T) {
	t.Setenv("YOLDA_BENCH_USER", "envuser")
	t.Setenv("YOLDA_BENCH_PASSWORD", "envpass")
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	o := Flags(fs)
	var help strings.Builder
	fs.SetOutput(&help)
	fs.PrintDefaults()
	if strings.Contains(help.String(), "envpass") {
		t.Errorf("-help shows the password:\n%s", help.String())
	}
	if err := fs.Parse([]string{"-concurrency", "3", "-insurers", "axa, mapfre"}); err != nil {
		t.Fatal(err)
	}
	want := Options{
		BaseURL: "http://127.0.0.1:8080", Username: "envuser", Password: "envpass",
		Concurrency: 3, Duration: 10 * time.Second, Warmup: 2 * time.Second,
		Insurers: []string{"axa", "mapfre"}, Seed: 1,
	}
	if !reflect.DeepEqual(*o, want) {
		t.Errorf("got %+v, want %+v", *o, want)
	}

	t.Setenv("YOLDA_BENCH_USER", "")
	t.Setenv("YOLDA_BENCH_PASSWORD", "")
	fs = flag.NewFlagSet("bench", flag.ContinueOnError)
	o = Flags(fs)
	if err := fs.Parse([]string{"-password", "given"}); err != nil {
		t.Fatal(err)
	}
	if o.Username != "bench" || o.Password != "given" || !slices.Equal(o.Insurers, DefaultInsurers()) {
		t.Errorf("got %+v", *o)
	}
}
