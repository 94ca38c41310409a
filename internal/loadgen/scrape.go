package loadgen

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	pmodel "github.com/prometheus/common/model"
)

// The server's metrics the pipeline benchmark reads (docs/operations.md).
const (
	metricConsumerLag = "yolda_consumer_lag_seconds"
	metricRelayLag    = "yolda_relay_lag_seconds"
	metricBacklog     = "yolda_outbox_backlog"
	metricPending     = "yolda_bus_consumer_pending"
	metricRelayed     = "yolda_relay_published_total"
	metricConsumed    = "yolda_bus_consumed_total"
)

// scrape is the /metrics of every process of the server at one moment.
type scrape []map[string]*dto.MetricFamily

// scrapeAll reads /metrics from each operations listener URL.
func scrapeAll(ctx context.Context, client *http.Client, urls []string) (scrape, error) {
	out := make(scrape, 0, len(urls))
	for _, u := range urls {
		fams, err := scrapeOne(ctx, client, u)
		if err != nil {
			return nil, err
		}
		out = append(out, fams)
	}
	return out, nil
}

func scrapeOne(ctx context.Context, client *http.Client, url string) (map[string]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: status %d", url, resp.StatusCode)
	}
	p := expfmt.NewTextParser(pmodel.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	return fams, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// gauge is the largest value of a gauge across processes, by the value of
// one label ("" for none), summing the series of one process that share
// that label value. Several processes that report one gauge (two relays'
// view of one outbox) see the same thing, hence the largest.
func (s scrape) gauge(name, by string) map[string]float64 {
	out := map[string]float64{}
	for _, fams := range s {
		f, ok := fams[name]
		if !ok {
			continue
		}
		sum := map[string]float64{}
		for _, m := range f.GetMetric() {
			sum[label(m, by)] += m.GetGauge().GetValue()
		}
		for k, v := range sum {
			if prev, ok := out[k]; !ok || v > prev {
				out[k] = v
			}
		}
	}
	return out
}

// counter is a counter summed across processes and series, by the value
// of one label ("" for none).
func (s scrape) counter(name, by string) map[string]float64 {
	out := map[string]float64{}
	for _, fams := range s {
		f, ok := fams[name]
		if !ok {
			continue
		}
		for _, m := range f.GetMetric() {
			out[label(m, by)] += m.GetCounter().GetValue()
		}
	}
	return out
}

// histogram is a cumulative histogram: counts[i] observations at most
// bounds[i]; the last bound is +Inf.
type histogram struct {
	bounds []float64
	counts []float64
}

func (h histogram) total() float64 {
	if len(h.counts) == 0 {
		return 0
	}
	return h.counts[len(h.counts)-1]
}

// add adds o's counts (same bounds) into h, or adopts o if h is empty.
func (h histogram) add(o histogram) histogram {
	if len(h.bounds) == 0 {
		return histogram{bounds: slices.Clone(o.bounds), counts: slices.Clone(o.counts)}
	}
	if !slices.Equal(h.bounds, o.bounds) {
		return h // a different layout cannot be merged; keep the first
	}
	for i := range h.counts {
		h.counts[i] += o.counts[i]
	}
	return h
}

// sub is what was observed between prev and h.
func (h histogram) sub(prev histogram) histogram {
	out := histogram{bounds: slices.Clone(h.bounds), counts: slices.Clone(h.counts)}
	if slices.Equal(h.bounds, prev.bounds) {
		for i := range out.counts {
			out.counts[i] -= prev.counts[i]
		}
	}
	return out
}

// quantile interpolates linearly inside the bucket holding the q-th
// observation, as Prometheus's histogram_quantile does. inf is true when
// that observation is past the last finite bound; d is then that bound.
func (h histogram) quantile(q float64) (d time.Duration, inf, ok bool) {
	total := h.total()
	if total <= 0 {
		return 0, false, false
	}
	want := q * total
	prevBound, prevCount := 0.0, 0.0
	for i, b := range h.bounds {
		c := h.counts[i]
		if c >= want {
			if math.IsInf(b, 1) {
				return seconds(prevBound), true, true
			}
			frac := 1.0
			if c > prevCount {
				frac = (want - prevCount) / (c - prevCount)
			}
			return seconds(prevBound + (b-prevBound)*frac), false, true
		}
		prevBound, prevCount = b, c
	}
	return seconds(prevBound), true, true
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// histograms are a histogram family summed across processes, by the value
// of one label ("" for none).
func (s scrape) histograms(name, by string) map[string]histogram {
	out := map[string]histogram{}
	for _, fams := range s {
		f, ok := fams[name]
		if !ok {
			continue
		}
		for _, m := range f.GetMetric() {
			out[label(m, by)] = out[label(m, by)].add(toHistogram(m.GetHistogram()))
		}
	}
	return out
}

func toHistogram(h *dto.Histogram) histogram {
	var out histogram
	for _, b := range h.GetBucket() {
		out.bounds = append(out.bounds, b.GetUpperBound())
		out.counts = append(out.counts, float64(b.GetCumulativeCount()))
	}
	if len(out.bounds) == 0 || !math.IsInf(out.bounds[len(out.bounds)-1], 1) {
		out.bounds = append(out.bounds, math.Inf(1))
		out.counts = append(out.counts, float64(h.GetSampleCount()))
	}
	return out
}
