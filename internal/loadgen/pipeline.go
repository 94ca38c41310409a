package loadgen

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// The pipeline benchmark (`yolda bench pipeline`): the highest intake
// rate that the whole platform sustains, not just intake. Open-loop load
// at a constant rate for a step; the step holds when every consumer keeps
// up with it; the rate steps up until a step fails, then bisects between
// the last step that held and the first that failed.

// FirstOffers tells, for requests by id, how long after its creation each
// got its first offer. Requests without an offer yet are left out of the
// answer.
type FirstOffers interface {
	FirstOffers(ctx context.Context, ids []string) (map[string]time.Duration, error)
}

// PipelineOptions configure a search.
type PipelineOptions struct {
	BaseURL            string
	OpsURLs            []string // /metrics of every process of the server
	Username, Password string   // the customer account that submits

	Rates      []float64     // the ladder, ascending
	Step       time.Duration // length of one step's load
	Bisect     int           // bisection steps after the ladder
	Resolution float64       // bisection stops when held and failed are this close (req/s), or a quarter of the failed rate

	MaxInFlight int
	Insurers    []string
	Area        *Area
	Seed        int64

	// What "keeps up" means.
	MaxLagP99        time.Duration // every consumer's commit-to-handled p99
	MaxErrorRate     float64       // arrivals not accepted (missed, refused, lost)
	GrowthRatio      float64       // backlog: last third <= first third x (1+GrowthRatio) + slack
	GrowthSlack      time.Duration // the slack, as this long's worth of the backlog's own traffic
	MaxFirstOfferP99 time.Duration // with FirstOffers: request commit to its first offer

	SampleEvery   time.Duration // metrics sampling during a step
	Settle        time.Duration // least wait after a step before the next (gauges refresh every 15 s)
	SettleTimeout time.Duration // a backlog that has not drained by then fails the step and ends the search
	DrainedBelow  float64       // a backlog or pending count at most this is drained

	ServerPIDs  []int // the server's processes, for CPU and memory
	PostgresPID int   // PostgreSQL's postmaster (0: none): it and every backend

	FirstOffers FirstOffers // nil: first offers not measured
	OfferSample int         // requests per step whose first offer is looked up

	// OutboxRows, if set, counts the outbox's rows in the database: the
	// outbox backlog then comes from it rather than from the relay's
	// yolda_outbox_backlog gauge, which a relay refreshes only between
	// drains, so that it stands still while a saturated relay falls behind.
	OutboxRows func(ctx context.Context) (int64, error)

	// Warmup is load at half the first rate before the first step, not
	// measured, then drained; AfterWarmup (if set) runs after it (an
	// ANALYZE: PostgreSQL plans the foreign-key checks of tables it has
	// never analysed badly, see bench/pgbench).
	Warmup      time.Duration
	AfterWarmup func(ctx context.Context) error

	Label string // names the configuration in the summary table

	// PprofURLs (base URLs of the processes' pprof listeners) and
	// ProfileDir: a CPU profile of each process over the middle third of
	// every step, written to ProfileDir.
	PprofURLs  []string
	ProfileDir string
}

// DefaultPipelineOptions are the criteria and a ladder to 12,000/s.
func DefaultPipelineOptions() PipelineOptions {
	return PipelineOptions{
		BaseURL:  "http://127.0.0.1:8080",
		OpsURLs:  []string{"http://127.0.0.1:9090/metrics"},
		Username: "bench", Password: "bench-password",
		Rates:       []float64{1000, 2000, 3000, 4000, 5000, 6000, 8000, 10000, 12000},
		Step:        60 * time.Second,
		Bisect:      2,
		Resolution:  500,
		MaxInFlight: 2048,
		Insurers:    DefaultInsurers(),
		Seed:        1,

		MaxLagP99:        time.Second,
		MaxErrorRate:     0.001,
		GrowthRatio:      0.1,
		GrowthSlack:      500 * time.Millisecond,
		MaxFirstOfferP99: time.Second,

		SampleEvery:   time.Second,
		Settle:        20 * time.Second,
		SettleTimeout: 3 * time.Minute,
		DrainedBelow:  50,
		OfferSample:   20000,
	}
}

func (o PipelineOptions) check() error {
	var errs []error
	if len(o.Rates) == 0 {
		errs = append(errs, errors.New("no rates"))
	}
	for i, r := range o.Rates {
		if !(r > 0) || (i > 0 && r <= o.Rates[i-1]) {
			errs = append(errs, errors.New("rates must be positive and ascending"))
			break
		}
	}
	if o.Step <= 0 || o.SampleEvery <= 0 || o.Settle < 0 || o.SettleTimeout < o.Settle {
		errs = append(errs, errors.New("step and sample interval must be positive, settle timeout at least the settle time"))
	}
	if o.MaxInFlight < 1 {
		errs = append(errs, errors.New("max in flight must be at least 1"))
	}
	if len(o.OpsURLs) == 0 {
		errs = append(errs, errors.New("need the /metrics URL of at least one process"))
	}
	return errors.Join(errs...)
}

// Quantiles is a p50/p99 pair of a latency. Inf marks a p99 past what
// was measured (a histogram's last bucket, requests with no offer yet).
type Quantiles struct {
	N        int
	P50, P99 time.Duration
	P99Inf   bool
}

func (q Quantiles) String() string {
	if q.N == 0 {
		return "–"
	}
	p99 := ms(q.P99)
	if q.P99Inf {
		p99 = "> " + p99
	}
	return ms(q.P50) + " / " + p99
}

func histQuantiles(h histogram) Quantiles {
	p50, _, ok := h.quantile(0.50)
	if !ok {
		return Quantiles{}
	}
	p99, inf, _ := h.quantile(0.99)
	return Quantiles{N: int(h.total()), P50: p50, P99: p99, P99Inf: inf}
}

// series is a gauge sampled during a step.
type series struct {
	at []time.Duration // since the step began
	v  []float64
}

func (s *series) add(at time.Duration, v float64) { s.at = append(s.at, at); s.v = append(s.v, v) }

// thirds is the mean of the first and of the last third of the step.
func (s series) thirds(step time.Duration) (first, last float64, ok bool) {
	var sf, sl float64
	var nf, nl int
	for i, at := range s.at {
		switch {
		case at < step/3:
			sf += s.v[i]
			nf++
		case at >= 2*step/3:
			sl += s.v[i]
			nl++
		}
	}
	if nf == 0 || nl == 0 {
		return 0, 0, false
	}
	return sf / float64(nf), sl / float64(nl), true
}

// Growth is one backlog's first and last third, and the rate at which its
// messages went through during the step (relayed, or handled by the
// consumer), the measure of how much it may wobble.
type Growth struct {
	Name        string
	First, Last float64
	PerSec      float64
}

// StepResult is one step's measurement and verdict.
type StepResult struct {
	Rate     float64
	Arrivals ArrivalsResult
	// Lag is each consumer's commit-to-handled latency over the step and
	// its drain (yolda_consumer_lag_seconds).
	Lag      map[string]Quantiles
	RelayLag Quantiles // commit to broker acknowledgement
	// The relay's rounds: publish time of one round (yolda_relay_publish_seconds)
	// and rows per round, which say whether the relay waits on the broker.
	RelayPublish      Quantiles
	RelayRowsPerRound float64
	Decision          Quantiles // dispatch: jobs received to offers committed
	Backlogs          []Growth  // outbox backlog, then each consumer's pending
	FirstOffer        Quantiles
	NoOffer           int // sampled requests without an offer after the drain

	// CPU (user+system) from the step's start to the end of its drain;
	// memory at the end of the load.
	ServerCPU, PostgresCPU, LoadgenCPU time.Duration
	ServerRSS, ServerPSS, PostgresPSS  int64
	LoadStart, LoadEnd                 float64 // 1-minute load average
	// OthersCores is the CPU that everything else on the machine used
	// during the step, in cores: what the benchmark competed with.
	OthersCores float64

	Drained   bool
	DrainTook time.Duration
	Holds     bool
	Why       []string // why it did not hold
}

// CPUPer1000 is seconds of CPU per 1,000 accepted requests.
func (r StepResult) CPUPer1000(cpu time.Duration) float64 {
	if r.Arrivals.Accepted == 0 {
		return 0
	}
	return cpu.Seconds() * 1000 / float64(r.Arrivals.Accepted)
}

// PipelineResult is a whole search.
type PipelineResult struct {
	Steps []StepResult
	Best  *StepResult // the highest rate that held; nil if none did
	// FirstFailed is the lowest rate that failed (0: none failed).
	FirstFailed float64
}

// pipeline runs one search.
type pipeline struct {
	o      PipelineOptions
	client *http.Client // the load
	ops    *http.Client // metrics scrapes, on their own connections
	proc   procfs
	out    io.Writer
}

// RunPipeline runs the search, printing each step on out as it ends.
func RunPipeline(ctx context.Context, o PipelineOptions, out io.Writer) (PipelineResult, error) {
	if err := o.check(); err != nil {
		return PipelineResult{}, err
	}
	p := &pipeline{o: o, client: newClient(o.MaxInFlight, nil), ops: newClient(4, nil), proc: defaultProc, out: out}
	defer p.client.CloseIdleConnections()
	defer p.ops.CloseIdleConnections()

	if err := p.warmup(ctx); err != nil {
		return PipelineResult{}, fmt.Errorf("warm-up: %w", err)
	}
	var res PipelineResult
	held, failed := 0.0, 0.0
	run := func(rate float64) (bool, error) {
		st, err := p.step(ctx, rate)
		if err != nil {
			return false, err
		}
		res.Steps = append(res.Steps, st)
		fmt.Fprintln(out, st.line())
		if st.Holds && rate > held {
			held = rate
			best := st
			res.Best = &best
		}
		if !st.Holds && (failed == 0 || rate < failed) {
			failed = rate
		}
		// A backlog that did not drain would spill into the next step.
		return st.Drained, nil
	}
	for _, rate := range o.Rates {
		ok, err := run(rate)
		if err != nil {
			return res, err
		}
		if !ok || failed != 0 {
			break
		}
	}
	for range o.Bisect {
		// Near the bottom of the ladder a fixed resolution would be coarse:
		// a quarter of the failed rate bounds it.
		if failed == 0 || failed-held <= min(o.Resolution, failed/4) {
			break
		}
		// Round rates to 50/s, for tables that read well.
		mid := math.Round((held+failed)/2/50) * 50
		if mid <= held || mid >= failed {
			mid = (held + failed) / 2
		}
		ok, err := run(mid)
		if err != nil {
			return res, err
		}
		if !ok {
			break
		}
	}
	res.FirstFailed = failed
	return res, nil
}

func (p *pipeline) warmup(ctx context.Context) error {
	o := p.o
	if o.Warmup > 0 {
		tok, err := Login(ctx, p.client, strings.TrimRight(o.BaseURL, "/"), o.Username, o.Password)
		if err != nil {
			return fmt.Errorf("login: %w", err)
		}
		// Half the first rate: enough to fill the tables, gentle enough to
		// leave no backlog to the first step.
		arr := Arrivals{
			Client: p.client, URL: strings.TrimRight(o.BaseURL, "/") + "/v1/requests", Tokens: []string{tok},
			Rate: o.Rates[0] / 2, Duration: o.Warmup, MaxInFlight: o.MaxInFlight, Insurers: o.Insurers, Area: o.Area, Seed: o.Seed - 1,
		}
		res, err := arr.Run(ctx)
		if err != nil {
			return err
		}
		_, drained, err := p.drain(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(p.out, "warm-up: %d requests at %.0f/s, %d accepted, drained %v\n", res.Scheduled, arr.Rate, res.Accepted, drained)
	}
	if o.AfterWarmup != nil {
		return o.AfterWarmup(ctx)
	}
	return nil
}

func (p *pipeline) step(ctx context.Context, rate float64) (StepResult, error) {
	o := p.o
	st := StepResult{Rate: rate, LoadStart: p.proc.loadAverage()}
	// A fresh token per step: a long search outlives one.
	tok, err := Login(ctx, p.client, strings.TrimRight(o.BaseURL, "/"), o.Username, o.Password)
	if err != nil {
		return st, fmt.Errorf("login: %w", err)
	}
	before, err := scrapeAll(ctx, p.ops, o.OpsURLs)
	if err != nil {
		return st, err
	}
	cpu0, err := p.cpu()
	if err != nil {
		return st, err
	}

	sampleEvery := int(math.Max(1, math.Round(rate*o.Step.Seconds()/float64(max(o.OfferSample, 1)))))
	arr := Arrivals{
		Client: p.client, URL: strings.TrimRight(o.BaseURL, "/") + "/v1/requests", Tokens: []string{tok},
		Rate: rate, Duration: o.Step, MaxInFlight: o.MaxInFlight, Insurers: o.Insurers, Area: o.Area,
		Seed: o.Seed + int64(rate), // each step its own bodies
	}
	if o.FirstOffers != nil {
		arr.SampleEvery = sampleEvery
	}

	// Sample the backlog gauges while the load runs.
	start := time.Now()
	sampled := map[string]*series{}
	var order []string
	samplerCtx, stopSampler := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var samplerErr error
	wg.Go(func() {
		t := time.NewTicker(o.SampleEvery)
		defer t.Stop()
		for {
			select {
			case <-samplerCtx.Done():
				return
			case <-t.C:
			}
			s, err := scrapeAll(samplerCtx, p.ops, o.OpsURLs)
			if err != nil {
				if samplerCtx.Err() == nil {
					samplerErr = err
				}
				continue
			}
			at := time.Since(start)
			bl, err := p.backlogs(samplerCtx, s)
			if err != nil {
				if samplerCtx.Err() == nil {
					samplerErr = err
				}
				continue
			}
			for name, v := range bl {
				if sampled[name] == nil {
					sampled[name] = &series{}
					order = append(order, name)
				}
				sampled[name].add(at, v)
			}
		}
	})
	if o.ProfileDir != "" {
		for i, u := range o.PprofURLs {
			wg.Go(func() {
				file := filepath.Join(o.ProfileDir, fmt.Sprintf("%s-%.0f-%d.pprof", cmp.Or(o.Label, "yolda"), rate, i))
				if err := profile(samplerCtx, u, o.Step/3, o.Step/3, file); err != nil && samplerCtx.Err() == nil {
					fmt.Fprintf(p.out, "profile %s: %v\n", u, err)
				}
			})
		}
	}
	st.Arrivals, err = arr.Run(ctx)
	stopSampler()
	wg.Wait()
	if err != nil {
		return st, err
	}
	if samplerErr != nil {
		return st, fmt.Errorf("sample metrics: %w", samplerErr)
	}
	if err := p.memory(&st); err != nil {
		return st, err
	}
	loadEnd, err := scrapeAll(ctx, p.ops, o.OpsURLs)
	if err != nil {
		return st, err
	}
	through := throughput(before, loadEnd, time.Since(start))
	slices.Sort(order) // outbox first (its name sorts first), then consumers
	for _, name := range order {
		first, last, ok := sampled[name].thirds(o.Step)
		if ok {
			st.Backlogs = append(st.Backlogs, Growth{Name: name, First: first, Last: last, PerSec: through[name]})
		}
	}

	// Let the step's work drain, so its lag is all counted and the next
	// step starts clean.
	drainStart := time.Now()
	after, drained, err := p.drain(ctx)
	if err != nil {
		return st, err
	}
	st.Drained, st.DrainTook = drained, time.Since(drainStart)
	cpu1, err := p.cpu()
	if err != nil {
		return st, err
	}
	st.ServerCPU, st.PostgresCPU, st.LoadgenCPU = cpu1[0]-cpu0[0], cpu1[1]-cpu0[1], cpu1[2]-cpu0[2]
	if wall := time.Since(start); wall > 0 && cpu1[3] > 0 {
		others := (cpu1[3] - cpu0[3]) - st.ServerCPU - st.PostgresCPU - st.LoadgenCPU
		st.OthersCores = max(others.Seconds(), 0) / wall.Seconds()
	}
	st.LoadEnd = p.proc.loadAverage()

	st.Lag = map[string]Quantiles{}
	prev := before.histograms(metricConsumerLag, "consumer")
	for name, h := range after.histograms(metricConsumerLag, "consumer") {
		if q := histQuantiles(h.sub(prev[name])); q.N > 0 {
			st.Lag[name] = q
		}
	}
	st.RelayLag = histQuantiles(after.histograms(metricRelayLag, "")[""].sub(before.histograms(metricRelayLag, "")[""]))
	st.RelayPublish = histQuantiles(after.histograms(metricRelayPublish, "")[""].sub(before.histograms(metricRelayPublish, "")[""]))
	if st.RelayPublish.N > 0 {
		st.RelayRowsPerRound = (after.counter(metricRelayed, "")[""] - before.counter(metricRelayed, "")[""]) / float64(st.RelayPublish.N)
	}
	st.Decision = histQuantiles(after.histograms(metricDecision, "")[""].sub(before.histograms(metricDecision, "")[""]))

	if o.FirstOffers != nil {
		if err := p.firstOffers(ctx, &st); err != nil {
			return st, err
		}
	}
	st.judge(o)
	return st, nil
}

const (
	metricDecision     = "yolda_dispatch_decision_seconds"
	metricRelayPublish = "yolda_relay_publish_seconds"
)

// profile waits, then fetches a CPU profile of length d from a pprof
// listener into file.
func profile(ctx context.Context, base string, wait, d time.Duration, file string) error {
	if err := sleep(ctx, wait); err != nil {
		return err
	}
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", strings.TrimRight(base, "/"), max(int(d.Seconds()), 1))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// backlogs are backlogs(s), the outbox counted in the database when it
// can be.
func (p *pipeline) backlogs(ctx context.Context, s scrape) (map[string]float64, error) {
	out := backlogs(s)
	if p.o.OutboxRows != nil {
		n, err := p.o.OutboxRows(ctx)
		if err != nil {
			return nil, fmt.Errorf("count outbox rows: %w", err)
		}
		out["outbox"] = float64(n)
	}
	return out, nil
}

// backlogs are the gauges that must not grow: the outbox backlog and each
// consumer's messages not yet done (undelivered plus unacknowledged).
func backlogs(s scrape) map[string]float64 {
	out := map[string]float64{}
	if v, ok := s.gauge(metricBacklog, "")[""]; ok {
		out["outbox"] = v
	}
	for consumer, v := range s.gauge(metricPending, "consumer") {
		out["pending "+consumer] = v
	}
	return out
}

// throughput is how many messages per second went through each backlog
// of backlogs between two scrapes: rows relayed from the outbox, messages
// handled by each consumer (whatever the outcome).
func throughput(before, after scrape, d time.Duration) map[string]float64 {
	out := map[string]float64{}
	if d <= 0 {
		return out
	}
	rate := func(a, b float64) float64 { return max(a-b, 0) / d.Seconds() }
	out["outbox"] = rate(after.counter(metricRelayed, "")[""], before.counter(metricRelayed, "")[""])
	prev := before.counter(metricConsumed, "consumer")
	for consumer, v := range after.counter(metricConsumed, "consumer") {
		out["pending "+consumer] = rate(v, prev[consumer])
	}
	return out
}

// drain waits at least Settle, then until every backlog is at most
// DrainedBelow or SettleTimeout has passed; it returns the last scrape.
func (p *pipeline) drain(ctx context.Context) (scrape, bool, error) {
	o := p.o
	begin := time.Now()
	if err := sleep(ctx, o.Settle); err != nil {
		return nil, false, err
	}
	for {
		s, err := scrapeAll(ctx, p.ops, o.OpsURLs)
		if err != nil {
			return nil, false, err
		}
		drained := true
		bl, err := p.backlogs(ctx, s)
		if err != nil {
			return nil, false, err
		}
		for _, v := range bl {
			if v > o.DrainedBelow {
				drained = false
			}
		}
		if drained || time.Since(begin) >= o.SettleTimeout {
			return s, drained, nil
		}
		if err := sleep(ctx, o.SampleEvery); err != nil {
			return nil, false, err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// cpu is the CPU used so far by the server, PostgreSQL, this process and
// the whole machine.
func (p *pipeline) cpu() ([4]time.Duration, error) {
	var out [4]time.Duration
	if len(p.o.ServerPIDs) > 0 {
		u, err := p.proc.sample(group{roots: p.o.ServerPIDs}, false)
		if err != nil {
			return out, fmt.Errorf("server: %w", err)
		}
		out[0] = u.CPU
	}
	if p.o.PostgresPID > 0 {
		u, err := p.proc.sample(group{roots: []int{p.o.PostgresPID}, tree: true}, false)
		if err != nil {
			return out, fmt.Errorf("postgres: %w", err)
		}
		out[1] = u.CPU
	}
	_, self, _, err := p.proc.stat(selfPID())
	if err != nil {
		return out, fmt.Errorf("load generator: %w", err)
	}
	out[2] = self
	// Without /proc/stat the others' share is unknown; it stays zero.
	out[3], _ = p.proc.machineBusy()
	return out, nil
}

func (p *pipeline) memory(st *StepResult) error {
	if len(p.o.ServerPIDs) > 0 {
		u, err := p.proc.sample(group{roots: p.o.ServerPIDs}, true)
		if err != nil {
			return fmt.Errorf("server: %w", err)
		}
		st.ServerRSS, st.ServerPSS = u.RSS, u.PSS
	}
	if p.o.PostgresPID > 0 {
		u, err := p.proc.sample(group{roots: []int{p.o.PostgresPID}, tree: true}, true)
		if err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		st.PostgresPSS = u.PSS
	}
	return nil
}

// firstOffers looks up the sampled requests' first offers; a request with
// none after the drain counts as slower than any that got one.
func (p *pipeline) firstOffers(ctx context.Context, st *StepResult) error {
	ids := st.Arrivals.Sampled
	if len(ids) == 0 {
		return nil
	}
	got, err := p.o.FirstOffers.FirstOffers(ctx, ids)
	if err != nil {
		return fmt.Errorf("first offers: %w", err)
	}
	lat := make([]time.Duration, 0, len(got))
	for _, d := range got {
		lat = append(lat, d)
	}
	slices.Sort(lat)
	st.NoOffer = len(ids) - len(lat)
	q := Quantiles{N: len(ids)}
	at := func(p float64) (time.Duration, bool) {
		i := int(math.Ceil(p*float64(len(ids)))) - 1
		i = min(max(i, 0), len(ids)-1)
		if i >= len(lat) {
			if len(lat) == 0 {
				return 0, true
			}
			return lat[len(lat)-1], true
		}
		return lat[i], false
	}
	q.P50, _ = at(0.50)
	q.P99, q.P99Inf = at(0.99)
	st.FirstOffer = q
	return nil
}

// judge decides whether the step held.
func (st *StepResult) judge(o PipelineOptions) {
	a := st.Arrivals
	if a.Scheduled > 0 {
		if rate := float64(a.Failed()) / float64(a.Scheduled); rate >= o.MaxErrorRate {
			st.Why = append(st.Why, fmt.Sprintf("%.2f%% of arrivals not accepted (%d missed, %d refused or lost)",
				100*rate, a.Missed, a.Sent-a.Accepted))
		}
	}
	names := make([]string, 0, len(st.Lag))
	for name := range st.Lag {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if q := st.Lag[name]; q.P99Inf || q.P99 >= o.MaxLagP99 {
			st.Why = append(st.Why, fmt.Sprintf("%s lag p99 %s", name, q))
		}
	}
	for _, g := range st.Backlogs {
		// A backlog that keeps up still wobbles by what is in flight: allow
		// GrowthSlack's worth of its own traffic, and never less than what
		// counts as drained.
		slack := max(g.PerSec*o.GrowthSlack.Seconds(), o.DrainedBelow)
		if g.Last > g.First*(1+o.GrowthRatio)+slack {
			st.Why = append(st.Why, fmt.Sprintf("%s grew from %.0f to %.0f", g.Name, g.First, g.Last))
		}
	}
	if o.FirstOffers != nil && st.FirstOffer.N > 0 {
		if q := st.FirstOffer; q.P99Inf || q.P99 >= o.MaxFirstOfferP99 {
			st.Why = append(st.Why, fmt.Sprintf("first offer p99 %s (%d of %d sampled without one)", q, st.NoOffer, q.N))
		}
	}
	if !st.Drained {
		st.Why = append(st.Why, fmt.Sprintf("backlog not drained %s after the step", st.DrainTook.Round(time.Second)))
	}
	st.Holds = len(st.Why) == 0
}

// line is one step's summary as it ends.
func (st StepResult) line() string {
	var b strings.Builder
	verdict := "HOLDS"
	if !st.Holds {
		verdict = "FAILS"
	}
	a := st.Arrivals
	fmt.Fprintf(&b, "step %6.0f/s  %s  accepted %.0f/s (%d of %d; missed %d, refused or lost %d)  intake p50 %s p99 %s  late %s",
		st.Rate, verdict, a.AcceptedPerSec(), a.Accepted, a.Scheduled, a.Missed, a.Sent-a.Accepted, ms(a.P50), ms(a.P99), ms(a.Late))
	for _, name := range sortedKeys(st.Lag) {
		fmt.Fprintf(&b, "  lag %s %s", name, st.Lag[name])
	}
	if st.RelayLag.N > 0 {
		fmt.Fprintf(&b, "  relay %s (%d rounds of %.0f rows, publish %s)", st.RelayLag, st.RelayPublish.N, st.RelayRowsPerRound, st.RelayPublish)
	}
	if st.Decision.N > 0 {
		fmt.Fprintf(&b, "  decision %s", st.Decision)
	}
	if st.FirstOffer.N > 0 {
		fmt.Fprintf(&b, "  first offer %s (%d sampled, %d none)", st.FirstOffer, st.FirstOffer.N, st.NoOffer)
	}
	for _, g := range st.Backlogs {
		fmt.Fprintf(&b, "  %s %.0f→%.0f", g.Name, g.First, g.Last)
	}
	fmt.Fprintf(&b, "  cpu/1k server %.2fs", st.CPUPer1000(st.ServerCPU))
	if st.PostgresCPU > 0 {
		fmt.Fprintf(&b, " postgres %.2fs", st.CPUPer1000(st.PostgresCPU))
	}
	fmt.Fprintf(&b, " loadgen %.2fs  rss %s", st.CPUPer1000(st.LoadgenCPU), mib(st.ServerRSS))
	if st.PostgresPSS > 0 {
		fmt.Fprintf(&b, "  pss %s+%s", mib(st.ServerPSS), mib(st.PostgresPSS))
	}
	fmt.Fprintf(&b, "  drained in %s  load %.1f→%.1f, others %.2f cores", st.DrainTook.Round(time.Second), st.LoadStart, st.LoadEnd, st.OthersCores)
	if len(st.Why) > 0 {
		fmt.Fprintf(&b, "  [%s]", strings.Join(st.Why, "; "))
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// SummaryHeader is the header of the table Summary rows belong to.
const SummaryHeader = `| configuration | sustained | intake p50 / p99 | consumer lag p50 / p99 | first offer p50 / p99 | CPU s per 1k requests: server / PostgreSQL / load generator | server RSS | PSS incl. PostgreSQL | load avg; others' CPU |
| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |`

// Summary is the search's row of the summary table: the best step that
// held, with the first rate that failed.
func (r PipelineResult) Summary(label string) string {
	if r.Best == nil {
		return fmt.Sprintf("| %s | none held (first failed: %.0f/s) | | | | | | | |", label, r.FirstFailed)
	}
	st := *r.Best
	sustained := fmt.Sprintf("**%.0f/s**", st.Rate)
	if r.FirstFailed > 0 {
		sustained += fmt.Sprintf(" (%.0f/s failed)", r.FirstFailed)
	}
	var lags []string
	for _, name := range sortedKeys(st.Lag) {
		lags = append(lags, name+" "+st.Lag[name].String())
	}
	first := "–"
	if st.FirstOffer.N > 0 {
		first = st.FirstOffer.String()
	}
	pg := "–"
	if st.PostgresCPU > 0 {
		pg = fmt.Sprintf("%.2f", st.CPUPer1000(st.PostgresCPU))
	}
	pss := mib(st.ServerPSS + st.PostgresPSS)
	return fmt.Sprintf("| %s | %s | %s / %s | %s | %s | %.2f / %s / %.2f | %s | %s | %.1f–%.1f; %.2f cores |",
		label, sustained, ms(st.Arrivals.P50), ms(st.Arrivals.P99), strings.Join(lags, "; "), first,
		st.CPUPer1000(st.ServerCPU), pg, st.CPUPer1000(st.LoadgenCPU), mib(st.ServerRSS), pss, st.LoadStart, st.LoadEnd, st.OthersCores)
}

// StepsHeader is the header of the table StepRow rows belong to.
const StepsHeader = `| configuration | rate | verdict | accepted/s | not accepted | intake p99 | consumer lag p99 | first offer p99 | backlog first → last third | CPU s/1k (server, PostgreSQL) | load avg; others' CPU | why not |
| --- | ---: | --- | ---: | ---: | ---: | --- | ---: | --- | ---: | ---: | --- |`

// StepRow is one step as a row of the steps table.
func (st StepResult) StepRow(label string) string {
	verdict := "holds"
	if !st.Holds {
		verdict = "**fails**"
	}
	var lags []string
	for _, name := range sortedKeys(st.Lag) {
		q := st.Lag[name]
		p99 := ms(q.P99)
		if q.P99Inf {
			p99 = "> " + p99
		}
		lags = append(lags, name+" "+p99)
	}
	first := "–"
	if st.FirstOffer.N > 0 {
		first = ms(st.FirstOffer.P99)
		if st.FirstOffer.P99Inf {
			first = "none for > 1 %"
		}
	}
	var bl []string
	for _, g := range st.Backlogs {
		bl = append(bl, fmt.Sprintf("%s %.0f → %.0f", g.Name, g.First, g.Last))
	}
	cpu := fmt.Sprintf("%.2f", st.CPUPer1000(st.ServerCPU))
	if st.PostgresCPU > 0 {
		cpu += fmt.Sprintf(", %.2f", st.CPUPer1000(st.PostgresCPU))
	}
	a := st.Arrivals
	return fmt.Sprintf("| %s | %.0f/s | %s | %.0f | %d | %s | %s | %s | %s | %s | %.1f–%.1f; %.2f cores | %s |",
		label, st.Rate, verdict, a.AcceptedPerSec(), a.Failed(), ms(a.P99), strings.Join(lags, "; "), first,
		strings.Join(bl, "; "), cpu, st.LoadStart, st.LoadEnd, st.OthersCores, strings.Join(st.Why, "; "))
}
