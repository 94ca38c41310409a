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

func TestSum(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c_total", Help: "c"}, []string{"a", "b"})
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h_seconds", Help: "h"})
	reg.MustRegister(c, h)
	c.WithLabelValues("x", "1").Add(2)
	c.WithLabelValues("x", "2").Add(3)
	c.WithLabelValues("y", "1").Add(5)
	h.Observe(1)
	h.Observe(2)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"c_total", nil, 10},
		{"c_total", map[string]string{"a": "x"}, 5},
		{"c_total", map[string]string{"a": "x", "b": "2"}, 3},
		{"c_total", map[string]string{"a": "z"}, 0},
		{"h_seconds", nil, 2},
		{"missing", nil, 0},
	} {
		got, err := Sum(reg, tc.name, tc.labels)
		if err != nil || got != tc.want {
			t.Errorf("Sum(%s, %v) = %v, %v; want %v", tc.name, tc.labels, got, err, tc.want)
		}
	}
}

func TestRegistrar(t *testing.T) {
	reg := prometheus.NewRegistry()
	first := NewRegistrar(reg)
	a := Reuse(first, prometheus.NewCounter(prometheus.CounterOpts{Name: "r_total", Help: "r"}))
	second := NewRegistrar(reg)
	b := Reuse(second, prometheus.NewCounter(prometheus.CounterOpts{Name: "r_total", Help: "r"}))
	if a != b || first.Err() != nil || second.Err() != nil {
		t.Fatalf("second registrar did not reuse the first's counter: %v %v", first.Err(), second.Err())
	}
	bad := NewRegistrar(reg)
	Reuse(bad, prometheus.NewGauge(prometheus.GaugeOpts{Name: "r_total", Help: "another"}))
	if bad.Err() == nil {
		t.Error("a clashing collector was accepted")
	}
}
