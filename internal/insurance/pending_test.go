package insurance_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/insurance"
	"github.com/yolda/yolda/internal/insurance/rest"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/telemetry"
)

type pendingSource []intake.PendingChecks

func (p pendingSource) PendingInsurance(context.Context) ([]intake.PendingChecks, error) {
	return p, nil
}

// TestPendingGaugesLabelOnlyConfiguredInsurers: a thousand made-up insurer
// codes in the database make one "other" series, not a thousand.
func TestPendingGaugesLabelOnlyConfiguredInsurers(t *testing.T) {
	fake := newFakeInsurer(t)
	set, err := insurance.NewClients([]insurance.Config{insurance.Config{Code: "anadolu", BaseURL: fake.srv.URL}.Default()},
		map[string]insurance.Factory{rest.Name: rest.Factory(rest.Options{})}, insurance.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	now := time.Now()
	src := pendingSource{{Insurer: "anadolu", Count: 2, Oldest: now.Add(-time.Minute)}}
	for i := range 1000 {
		src = append(src, intake.PendingChecks{Insurer: fmt.Sprintf("made-up-%d", i), Count: 1, Oldest: now.Add(-time.Duration(i) * time.Second)})
	}
	reg := prometheus.NewRegistry()
	g := insurance.NewPendingGauges(src, set, reg, nil)
	if err := g.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	families, _ := reg.Gather()
	for _, fam := range families {
		if n := len(fam.GetMetric()); n != 2 {
			t.Errorf("%s has %d series, want 2 (anadolu, other)", fam.GetName(), n)
		}
	}
	if n, _ := telemetry.Sum(reg, "yolda_insurer_checks_pending", map[string]string{"insurer": insurance.OtherInsurer}); n != 1000 {
		t.Errorf("other pending %v, want 1000", n)
	}
	if n, _ := telemetry.Sum(reg, "yolda_insurer_oldest_pending_seconds", map[string]string{"insurer": insurance.OtherInsurer}); n < 999 {
		t.Errorf("other oldest %vs, want the oldest of them (999s)", n)
	}
	if n, _ := telemetry.Sum(reg, "yolda_insurer_checks_pending", map[string]string{"insurer": "anadolu"}); n != 2 {
		t.Errorf("anadolu pending %v, want 2", n)
	}
}
