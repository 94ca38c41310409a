package telemetry

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegisterOrReuse(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := prometheus.NewCounter(prometheus.CounterOpts{Name: "x_total", Help: "x"})
	b := prometheus.NewCounter(prometheus.CounterOpts{Name: "x_total", Help: "x"})
	got, err := RegisterOrReuse(reg, a)
	if err != nil || got != a {
		t.Fatalf("first: %v", err)
	}
	got, err = RegisterOrReuse(reg, b)
	if err != nil || got != a {
		t.Fatalf("second registration did not reuse the first: %v", err)
	}
	clash := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x_total", Help: "other help"})
	if _, err := RegisterOrReuse(reg, clash); err == nil {
		t.Error("a different collector under the same name was accepted")
	}
	if got, err := RegisterOrReuse(nil, b); err != nil || got != b {
		t.Error("nil registry")
	}
}
