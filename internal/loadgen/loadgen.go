// Package loadgen drives POST /v1/requests hard enough to find the intake
// path's throughput and latency, the way a crowd of customer apps would.
// It is the engine behind `yolda bench intake`.
package loadgen

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options for one run.
type Options struct {
	BaseURL            string   // e.g. http://127.0.0.1:8080
	Username, Password string   // a customer account, logged in via POST /v1/auth/login
	Tokens             []string // pre-issued tokens, used round-robin instead of logging in

	// Concurrency is the number of workers, each with at most one request
	// in flight, so it also bounds the connections used.
	Concurrency int
	Duration    time.Duration // measured phase; 0 means until Requests are sent
	Warmup      time.Duration // sent before the measured phase, not counted
	Requests    int           // cap on measured requests; 0 = no cap
	// Rate is the target requests per second over warmup and measurement
	// alike; 0 sends as fast as the workers can (closed loop). When set,
	// requests go out on a fixed schedule whether or not earlier ones have
	// answered, and latency is measured from the scheduled time, so a
	// server that falls behind shows it in the percentiles instead of
	// quietly slowing the generator down.
	Rate     float64
	Insurers []string // insurer codes to draw from; empty means DefaultInsurers
	Seed     int64
	// TLS, if set, configures https:// (an edge with its own certificate).
	TLS *tls.Config
}

// Result of one run. Only requests sent in the measured phase count; the
// run waits for those still in flight when the phase ends.
type Result struct {
	Sent, Accepted int         // Accepted = 202
	Statuses       map[int]int // non-202 counts by status code; transport errors under 0
	// Elapsed runs from the start of the measured phase to the last
	// measured answer.
	Elapsed        time.Duration
	AcceptedPerSec float64
	// Latency over every request that got an HTTP answer, whatever its
	// status. Transport errors are left out: a refused connection fails
	// in microseconds and would flatter the percentiles.
	P50, P90, P99, Max time.Duration

	// The run's shape, echoed for Print.
	Concurrency      int
	Duration, Warmup time.Duration
	Requests         int
	Rate             float64
}

// requestTimeout bounds one request so that a hung server ends a run
// instead of stalling it; the timeouts show up as transport errors.
const requestTimeout = 30 * time.Second

// Run logs in (unless o.Tokens are given), then submits random requests
// for o.Warmup plus o.Duration, or until o.Requests measured requests have
// been sent. If ctx ends first, Run returns what it measured so far along
// with ctx's error; requests cut short by ctx are not counted.
func Run(ctx context.Context, o Options) (Result, error) {
	if err := o.check(); err != nil {
		return Result{}, err
	}
	insurers := o.Insurers
	if len(insurers) == 0 {
		insurers = DefaultInsurers()
	}
	base := strings.TrimRight(o.BaseURL, "/")

	client := newClient(o.Concurrency, o.TLS)
	defer client.CloseIdleConnections()

	tokens := o.Tokens
	if len(tokens) == 0 {
		tok, err := Login(ctx, client, base, o.Username, o.Password)
		if err != nil {
			return Result{}, fmt.Errorf("login: %w", err)
		}
		tokens = []string{tok}
	}

	start := time.Now()
	s := &schedule{
		start:       start,
		measureFrom: start.Add(o.Warmup),
		limit:       int64(o.Requests),
	}
	if o.Duration > 0 {
		s.stopAt = s.measureFrom.Add(o.Duration)
	}
	if o.Rate > 0 {
		s.interval = float64(time.Second) / o.Rate
	}

	workers := make([]*worker, o.Concurrency)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{
			client:   client,
			url:      base + "/v1/requests",
			tokens:   tokens,
			next:     i,
			insurers: insurers,
			// Each worker gets its own stream so that workers never contend
			// on a generator, and a given seed always yields the same
			// sequence of bodies per worker.
			rng:      rand.New(rand.NewPCG(uint64(o.Seed), uint64(i))),
			statuses: map[int]int{},
		}
		if o.Requests > 0 {
			w.latencies = make([]time.Duration, 0, o.Requests/o.Concurrency+1)
		}
		workers[i] = w
		wg.Go(func() { w.run(ctx, s) })
	}
	wg.Wait()

	res := merge(workers, s.measureFrom)
	res.Concurrency, res.Duration, res.Warmup, res.Requests, res.Rate = o.Concurrency, o.Duration, o.Warmup, o.Requests, o.Rate
	return res, ctx.Err()
}

// newClient is an HTTP client keeping up to conns connections to the
// server.
func newClient(conns int, tlsConfig *tls.Config) *http.Client {
	tr := &http.Transport{
		// A benchmark of this server must not wander through a proxy that
		// happens to be set in the environment.
		TLSClientConfig:     tlsConfig,
		Proxy:               nil,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		// One HTTP/1.1 connection per worker, as phones would connect; HTTP/2
		// would multiplex every worker over a single connection.
		Protocols: new(http.Protocols),
	}
	tr.Protocols.SetHTTP1(true)
	return &http.Client{
		Transport: tr,
		Timeout:   requestTimeout,
		// A redirect would mean a wrong base URL; following it would count
		// the wrong endpoint.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (o Options) check() error {
	u, err := url.Parse(o.BaseURL)
	switch {
	case err != nil:
		return fmt.Errorf("base URL: %w", err)
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		return fmt.Errorf("base URL %q: want http://host[:port] or https://host[:port]", o.BaseURL)
	case o.Concurrency < 1:
		return errors.New("concurrency must be at least 1")
	case o.Duration < 0, o.Warmup < 0:
		return errors.New("duration and warmup must not be negative")
	case o.Requests < 0:
		return errors.New("requests must not be negative")
	case o.Duration == 0 && o.Requests == 0:
		return errors.New("need a duration or a request count, or the run would never end")
	case o.Rate < 0, math.IsNaN(o.Rate), math.IsInf(o.Rate, 0):
		return errors.New("rate must be a non-negative number")
	case len(o.Tokens) == 0 && o.Username == "":
		return errors.New("need a username or tokens")
	}
	return nil
}

// schedule hands out send slots to the workers and decides which ones
// count. It is shared by every worker of one run.
type schedule struct {
	start, measureFrom time.Time
	stopAt             time.Time // zero: no time limit
	limit              int64     // measured requests; 0: no limit
	interval           float64   // nanoseconds between sends; 0: closed loop

	slots    atomic.Int64 // open loop: the next slot number
	measured atomic.Int64 // measured slots handed out
}

// next returns when to send the next request and whether it counts, or
// ok=false when the run is over.
func (s *schedule) next(now time.Time) (at time.Time, measured, ok bool) {
	if !s.stopAt.IsZero() && !now.Before(s.stopAt) {
		return time.Time{}, false, false
	}
	at = now
	if s.interval > 0 {
		// Slot times derive from the slot number rather than from the last
		// send, so that a late worker never pushes the schedule back.
		i := s.slots.Add(1) - 1
		at = s.start.Add(time.Duration(float64(i) * s.interval))
		if !s.stopAt.IsZero() && !at.Before(s.stopAt) {
			return time.Time{}, false, false
		}
	}
	if at.Before(s.measureFrom) {
		return at, false, true
	}
	if s.limit > 0 && s.measured.Add(1) > s.limit {
		return time.Time{}, false, false
	}
	return at, true, true
}

// worker sends one request at a time and keeps its own tallies, so that
// the hot path takes no lock; merge combines them after the run.
type worker struct {
	client   *http.Client
	url      string
	tokens   []string
	next     int // index into tokens
	insurers []string
	rng      *rand.Rand

	sent, accepted int
	statuses       map[int]int
	latencies      []time.Duration
	last           time.Time // when the last measured request ended
}

func (w *worker) run(ctx context.Context, s *schedule) {
	for ctx.Err() == nil {
		at, measured, ok := s.next(time.Now())
		if !ok || !sleepUntil(ctx, at) {
			return
		}
		// In closed loop the clock starts at the actual send.
		if s.interval == 0 {
			at = time.Now()
		}
		status, err := w.send(ctx)
		end := time.Now()
		if !measured || ctx.Err() != nil {
			// A request that ctx cut short says nothing about the server.
			continue
		}
		w.sent++
		w.last = end
		switch {
		case err != nil:
			w.statuses[0]++
			continue
		case status == http.StatusAccepted:
			w.accepted++
		default:
			w.statuses[status]++
		}
		w.latencies = append(w.latencies, end.Sub(at))
	}
}

// sleepUntil waits for t and reports whether ctx let it.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// send submits one random request and returns its status code.
func (w *worker) send(ctx context.Context) (int, error) {
	tok := w.tokens[w.next%len(w.tokens)]
	w.next++
	status, _, err := submit(ctx, w.client, w.url, tok, RandomSubmission(w.rng, w.insurers))
	return status, err
}

// submit posts one request body and returns the status code and the
// Location header of the answer.
func submit(ctx context.Context, client *http.Client, url, token string, s Submission) (int, string, error) {
	body, err := json.Marshal(s)
	if err != nil {
		return 0, "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	// Reading to the end lets the connection go back to the pool; a body
	// left unread would cost a new connection per request.
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, "", err
	}
	return resp.StatusCode, resp.Header.Get("Location"), nil
}

func merge(workers []*worker, measureFrom time.Time) Result {
	res := Result{Statuses: map[int]int{}}
	var last time.Time
	n := 0
	for _, w := range workers {
		n += len(w.latencies)
	}
	all := make([]time.Duration, 0, n)
	for _, w := range workers {
		res.Sent += w.sent
		res.Accepted += w.accepted
		for code, c := range w.statuses {
			res.Statuses[code] += c
		}
		all = append(all, w.latencies...)
		if w.last.After(last) {
			last = w.last
		}
	}
	if res.Sent > 0 {
		res.Elapsed = last.Sub(measureFrom)
	} else {
		res.Elapsed = max(time.Since(measureFrom), 0)
	}
	if res.Elapsed > 0 {
		res.AcceptedPerSec = float64(res.Accepted) / res.Elapsed.Seconds()
	}
	slices.Sort(all)
	res.P50, res.P90, res.P99 = percentile(all, 0.50), percentile(all, 0.90), percentile(all, 0.99)
	if len(all) > 0 {
		res.Max = all[len(all)-1]
	}
	return res
}

// percentile returns the nearest-rank percentile of sorted samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Login exchanges a username and password for an access token (POST
// /v1/auth/login); the error says what the server answered.
func Login(ctx context.Context, client *http.Client, base, username, password string) (string, error) {
	body, err := json.Marshal(map[string]string{"username": username, "password": password})
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/auth/login", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		var p struct{ Title, Detail string }
		_ = json.Unmarshal(data, &p) // a body that is no problem document still leaves the status to report
		msg := strings.TrimSpace(p.Title + ": " + p.Detail)
		msg = strings.Trim(msg, ": ")
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return "", fmt.Errorf("status %d as %q: %s", resp.StatusCode, username, msg)
	}
	var t struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(data, &t); err != nil {
		return "", fmt.Errorf("decode answer: %w", err)
	}
	if t.AccessToken == "" {
		return "", errors.New("answer has no access_token")
	}
	return t.AccessToken, nil
}

// Print writes a human-readable summary of r.
func (r Result) Print(w io.Writer) {
	var b strings.Builder
	fmt.Fprintf(&b, "intake: %d connections", r.Concurrency)
	if r.Duration > 0 {
		fmt.Fprintf(&b, ", %s", r.Duration)
	}
	if r.Requests > 0 {
		fmt.Fprintf(&b, ", at most %d requests", r.Requests)
	}
	if r.Warmup > 0 {
		fmt.Fprintf(&b, " (+%s warmup)", r.Warmup)
	}
	if r.Rate > 0 {
		fmt.Fprintf(&b, ", target %g req/s", r.Rate)
	}
	b.WriteByte('\n')

	fmt.Fprintf(&b, "sent %d  accepted %d (202)  other:", r.Sent, r.Accepted)
	codes := make([]int, 0, len(r.Statuses))
	for code, n := range r.Statuses {
		if n > 0 {
			codes = append(codes, code)
		}
	}
	slices.Sort(codes)
	if len(codes) == 0 {
		b.WriteString(" none")
	}
	for _, code := range codes {
		if code == 0 {
			fmt.Fprintf(&b, " errors=%d", r.Statuses[code])
		} else {
			fmt.Fprintf(&b, " %d=%d", code, r.Statuses[code])
		}
	}
	b.WriteByte('\n')

	fmt.Fprintf(&b, "accepted/s %.1f (over %.2fs)   latency p50 %s  p90 %s  p99 %s  max %s\n",
		r.AcceptedPerSec, r.Elapsed.Seconds(), ms(r.P50), ms(r.P90), ms(r.P99), ms(r.Max))
	io.WriteString(w, b.String())
}

func ms(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

// Flags registers the run's flags on fs and returns the Options they fill
// once fs is parsed.
func Flags(fs *flag.FlagSet) *Options {
	o := &Options{
		Username: envOr("YOLDA_BENCH_USER", "bench"),
		Password: envOr("YOLDA_BENCH_PASSWORD", "bench-password"),
		Insurers: DefaultInsurers(),
	}
	fs.StringVar(&o.BaseURL, "url", "http://127.0.0.1:8080", "base URL of the Yolda API")
	fs.StringVar(&o.Username, "username", o.Username, "customer account to log in as (env YOLDA_BENCH_USER)")
	fs.Var(secret{&o.Password}, "password", "password of that account (env YOLDA_BENCH_PASSWORD, else bench-password)")
	fs.IntVar(&o.Concurrency, "concurrency", 64, "concurrent workers, each with its own connection")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "length of the measured phase")
	fs.DurationVar(&o.Warmup, "warmup", 2*time.Second, "sending time before measuring starts")
	fs.IntVar(&o.Requests, "requests", 0, "stop after this many measured requests (0: no limit)")
	fs.Float64Var(&o.Rate, "rate", 0, "target requests per second, sent on a schedule (0: as fast as possible)")
	fs.Int64Var(&o.Seed, "seed", 1, "seed of the random request bodies")
	fs.Func("insurers", "comma-separated insurer codes the server knows (default anadolu,axa,allianz)", func(v string) error {
		var codes []string
		for c := range strings.SplitSeq(v, ",") {
			if c = strings.TrimSpace(c); c != "" {
				codes = append(codes, c)
			}
		}
		if len(codes) == 0 {
			return errors.New("no insurer codes")
		}
		o.Insurers = codes
		return nil
	})
	return o
}

// secret is a flag value that -help never prints, since its default may
// come from the environment.
type secret struct{ p *string }

func (s secret) String() string     { return "" }
func (s secret) Set(v string) error { *s.p = v; return nil }

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
