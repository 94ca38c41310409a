package checks

import (
	"context"
	"fmt"
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

// The gauges have a series for each configured insurer and one "other"
// for every code the database holds that no configuration knows (a
// thousand made-up codes make one series, not a thousand), and read 0 once
// nothing is pending, however old the last check was.
func TestPendingGauges(t *testing.T) {
	cfg := insurance.Config{Code: "anadolu", BaseURL: "http://127.0.0.1:1"}.Default()
	clients, err := resilient.NewClients([]insurance.Config{cfg},
		map[string]insurance.Factory{"rest": func(insurance.Config) (insurance.Adapter, error) { return adapterFunc(nil), nil }}, resilient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	src := &pendingSource{{Insurer: "anadolu", Count: 3, Oldest: now.Add(-90 * time.Second)}}
	for i := range 1000 {
		*src = append(*src, intake.PendingChecks{Insurer: fmt.Sprintf("made-up-%d", i), Count: 1, Oldest: now.Add(-time.Duration(i) * time.Second)})
	}
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
	if n, age := read("yolda_insurer_checks_pending", OtherInsurer), read("yolda_insurer_oldest_pending_seconds", OtherInsurer); n != 1000 || age != 999 {
		t.Errorf("other: %v pending, oldest %vs; want 1000, 999s", n, age)
	}
	families, _ := reg.Gather()
	for _, f := range families {
		if n := len(f.GetMetric()); n != 2 {
			t.Errorf("%s has %d series, want 2 (anadolu, other)", f.GetName(), n)
		}
	}
	*src = nil // all settled
	if err := g.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, code := range []string{"anadolu", OtherInsurer} {
		if n, age := read("yolda_insurer_checks_pending", code), read("yolda_insurer_oldest_pending_seconds", code); n != 0 || age != 0 {
			t.Errorf("%s, nothing pending: %v pending, oldest %vs; want 0, 0", code, n, age)
		}
	}
}
