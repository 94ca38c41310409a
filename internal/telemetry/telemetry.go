// Package telemetry holds the Prometheus plumbing that several packages
// share. Metrics themselves are declared where they are measured.
package telemetry

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterOrReuse adds c to reg, or returns the collector already
// registered under the same description, so that two instances of one
// component (two buses, insurer clients built at different times) on one
// registry share their series. A nil reg registers nothing.
func RegisterOrReuse(reg prometheus.Registerer, c prometheus.Collector) (prometheus.Collector, error) {
	if reg == nil {
		return c, nil
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return are.ExistingCollector, nil
		}
		return c, err
	}
	return c, nil
}

// Sum adds up the series of the metric name whose labels include labels:
// counters and gauges by value, histograms by sample count. A metric with
// no such series sums to 0. Tests and health reports read metrics with it.
func Sum(g prometheus.Gatherer, name string, labels map[string]string) (float64, error) {
	families, err := g.Gather()
	if err != nil {
		return 0, err
	}
	sum := 0.0
	for _, fam := range families {
		if fam.GetName() != name {
			continue
		}
	series:
		for _, m := range fam.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum, nil
}

// Registrar registers a component's collectors with RegisterOrReuse and
// collects the errors, so that a constructor can declare its metrics in
// one literal and check once.
type Registrar struct {
	reg  prometheus.Registerer
	errs []error
}

// NewRegistrar registers on reg; a nil reg registers nothing.
func NewRegistrar(reg prometheus.Registerer) *Registrar { return &Registrar{reg: reg} }

// Reuse registers c, or returns the collector of the same description
// already registered.
func Reuse[C prometheus.Collector](r *Registrar, c C) C {
	got, err := RegisterOrReuse(r.reg, c)
	if err != nil {
		r.errs = append(r.errs, err)
		return c
	}
	if existing, ok := got.(C); ok {
		return existing
	}
	r.errs = append(r.errs, errors.New("telemetry: a collector of another type holds this name"))
	return c
}

// Err reports every registration that failed.
func (r *Registrar) Err() error { return errors.Join(r.errs...) }
