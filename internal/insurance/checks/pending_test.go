package checks

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/insurance"
	"github.com/yolda/yolda/internal/insurance/resilient"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/telemetry"
)

type pendingSource []intake.PendingChecks

func (p *pendingSource) PendingInsurance(context.Context) ([]intake.PendingChecks, error) {
	return *p, nil
}

// The gauges have a series for each configured insurer and no other (a
// code the database holds that no configuration knows makes none), and
// read 0 once nothing is pending, however old the last check was.
func TestPendingGauges(t *testing.T) {
	cfg := insurance.Config{Code: "anadolu", BaseURL: "http://127.0.0.1:1"}.Default()
	clients, err := resilient.NewClients([]insurance.Config{cfg},
		map[string]insurance.Factory{"rest": func(insurance.Config) (insurance.Adapter, error) { return adapterFunc(nil), nil }}, resilient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	src := &pendingSource{{Insurer: "anadolu", Count: 3, Oldest: now.Add(-90 * time.Second)}, {Insurer: "gone", Count: 7, Oldest: now.Add(-time.Hour)}}
	reg := prometheus.NewRegistry()
	g, err := NewPendingGauges(src, clients, reg, func() time.Time { return now }, nil)
	if err != nil {
		t.Fatal(err)
	}
	read := func(name, insurer string) float64 {
		v, err := telemetry.Sum(reg, name, map[string]string{"insurer": insurer})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if err := g.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, age := read("yolda_insurer_checks_pending", "anadolu"), read("yolda_insurer_oldest_pending_seconds", "anadolu"); n != 3 || age != 90 {
		t.Errorf("anadolu: %v pending, oldest %vs; want 3, 90s", n, age)
	}
	families, _ := reg.Gather()
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "insurer" && l.GetValue() != "anadolu" {
					t.Errorf("%s has a series for %q, an insurer nobody configured", f.GetName(), l.GetValue())
				}
			}
		}
	}
	*src = nil // all settled
	if err := g.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, age := read("yolda_insurer_checks_pending", "anadolu"), read("yolda_insurer_oldest_pending_seconds", "anadolu"); n != 0 || age != 0 {
		t.Errorf("nothing pending: %v pending, oldest %vs; want 0, 0", n, age)
	}
}
