package intake

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/telemetry"
)

func TestMetricsObserve(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	// A second set on the same registry shares the series.
	again, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.Observe(3, 2*time.Millisecond, nil)
	again.Observe(1, time.Millisecond, errors.New("disk full"))
	for name, want := range map[string]float64{
		"yolda_intake_batch_size":          2,
		"yolda_intake_commit_seconds":      2,
		"yolda_intake_commit_errors_total": 1,
	} {
		if got, err := telemetry.Sum(reg, name, nil); err != nil || got != want {
			t.Errorf("%s = %v, %v; want %v", name, got, err, want)
		}
	}
}
