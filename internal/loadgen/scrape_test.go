package loadgen

import (
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// process is a fake server process: a registry served on /metrics.
type process struct {
	reg     *prometheus.Registry
	lag     *prometheus.HistogramVec
	backlog prometheus.Gauge
	pending *prometheus.GaugeVec
	relayed prometheus.Counter
	handled *prometheus.CounterVec
	srv     *httptest.Server
}

func newProcess(t *testing.T) *process {
	t.Helper()
	p := &process{reg: prometheus.NewRegistry()}
	p.lag = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: metricConsumerLag, Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"consumer"})
	p.backlog = prometheus.NewGauge(prometheus.GaugeOpts{Name: metricBacklog})
	p.pending = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: metricPending}, []string{"stream", "consumer", "state"})
	p.relayed = prometheus.NewCounter(prometheus.CounterOpts{Name: metricRelayed})
	p.handled = prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricConsumed}, []string{"stream", "consumer", "outcome"})
	p.reg.MustRegister(p.lag, p.backlog, p.pending, p.relayed, p.handled)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{}))
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func TestScrapeAcrossProcesses(t *testing.T) {
	t.Parallel()
	a, b := newProcess(t), newProcess(t)
	for range 90 {
		a.lag.WithLabelValues("notify").Observe(0.004)
	}
	for range 10 {
		b.lag.WithLabelValues("notify").Observe(3)
	}
	b.lag.WithLabelValues("dispatch").Observe(0.02)
	a.backlog.Set(10)
	b.backlog.Set(40)
	a.pending.WithLabelValues("EVENTS", "notify", "undelivered").Set(5)
	a.pending.WithLabelValues("EVENTS", "notify", "unacked").Set(7)
	b.pending.WithLabelValues("JOBS", "dispatch", "unacked").Set(2)
	a.relayed.Add(100)
	b.relayed.Add(50)
	a.handled.WithLabelValues("EVENTS", "notify", "ack").Add(30)
	a.handled.WithLabelValues("EVENTS", "notify", "retry").Add(3)

	s, err := scrapeAll(t.Context(), newClient(2, nil), []string{a.srv.URL + "/metrics", b.srv.URL + "/metrics"})
	if err != nil {
		t.Fatal(err)
	}
	// Gauges: the largest view of one outbox; a consumer's states add up.
	if got := backlogs(s); got["outbox"] != 40 || got["pending notify"] != 12 || got["pending dispatch"] != 2 || len(got) != 3 {
		t.Errorf("backlogs %v, want outbox 40, pending notify 12, pending dispatch 2", got)
	}
	// Counters and histograms add up across processes.
	if got := s.counter(metricRelayed, "")[""]; got != 150 {
		t.Errorf("relayed %v, want 150", got)
	}
	if got := s.counter(metricConsumed, "consumer")["notify"]; got != 33 {
		t.Errorf("notify handled %v, want 33", got)
	}
	h := s.histograms(metricConsumerLag, "consumer")
	q := histQuantiles(h["notify"])
	if q.N != 100 {
		t.Fatalf("notify lag n=%d, want 100", q.N)
	}
	// 90 at 4 ms fall in the (2 ms, 4 ms] bucket, 10 at 3 s in (2.048, 4.096].
	if q.P50 <= 2*time.Millisecond || q.P50 > 4*time.Millisecond {
		t.Errorf("p50 %v, want in (2ms, 4ms]", q.P50)
	}
	if q.P99 <= 2048*time.Millisecond || q.P99 > 4096*time.Millisecond || q.P99Inf {
		t.Errorf("p99 %v (inf %v), want in (2.048s, 4.096s]", q.P99, q.P99Inf)
	}
	if histQuantiles(h["dispatch"]).N != 1 {
		t.Errorf("dispatch lag %+v, want one observation", histQuantiles(h["dispatch"]))
	}
}

func TestHistogramQuantiles(t *testing.T) {
	t.Parallel()
	inf := math.Inf(1)
	h := histogram{bounds: []float64{0.1, 0.2, 0.4, inf}, counts: []float64{50, 90, 100, 100}}
	tests := []struct {
		q    float64
		want time.Duration
		inf  bool
	}{
		{0.25, 50 * time.Millisecond, false},  // half-way into the first bucket
		{0.70, 150 * time.Millisecond, false}, // half-way into the second
		{0.95, 300 * time.Millisecond, false},
	}
	for _, tt := range tests {
		got, isInf, ok := h.quantile(tt.q)
		if !ok || isInf != tt.inf || (got-tt.want).Abs() > time.Microsecond {
			t.Errorf("q%.2f = %v (inf %v, ok %v), want %v", tt.q, got, isInf, ok, tt.want)
		}
	}
	// Past the last finite bound: the bound, flagged.
	tail := histogram{bounds: []float64{0.1, inf}, counts: []float64{90, 100}}
	if got, isInf, _ := tail.quantile(0.99); !isInf || got != 100*time.Millisecond {
		t.Errorf("q0.99 past the last bound = %v (inf %v), want 100ms flagged", got, isInf)
	}
	// What happened between two scrapes.
	later := histogram{bounds: h.bounds, counts: []float64{50, 90, 100, 200}}
	d := later.sub(h)
	if d.total() != 100 {
		t.Fatalf("delta total %v, want 100", d.total())
	}
	if _, isInf, _ := d.quantile(0.5); !isInf {
		t.Error("every new observation is past 0.4s: want an infinite quantile")
	}
	if _, _, ok := (histogram{}).quantile(0.5); ok {
		t.Error("an empty histogram has no quantile")
	}
}
