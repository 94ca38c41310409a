package resilient_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/insurance"
	"github.com/yolda/yolda/internal/insurance/configfile"
	"github.com/yolda/yolda/internal/insurance/mockinsurer"
	"github.com/yolda/yolda/internal/insurance/resilient"
	"github.com/yolda/yolda/internal/insurance/rest"
)

// An outage and a recovery staged on the mock insurer, through the insurers
// file, the rest adapter and the client, as the worker will see them.
func TestMockInsurerOutageAndRecovery(t *testing.T) {
	t.Parallel()
	mock := mockinsurer.New(mockinsurer.Behaviour{Bearer: "tok"})
	srv := httptest.NewServer(mock)
	t.Cleanup(func() { mock.Close(); srv.Close() })

	cfgs, err := configfile.Parse([]byte(`
insurers:
  - code: anadolu
    base_url: `+srv.URL+`
    timeout: 150ms
    auth: {header: Authorization, scheme: Bearer, value_env: TOKEN}
    retry: {attempts: 2, base_delay: 1ms, max_delay: 2ms}
    breaker: {failures: 4, open_for: 250ms}
`), env(map[string]string{"TOKEN": "tok"}))
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	set, err := resilient.NewClients(cfgs, map[string]insurance.Factory{rest.Name: rest.Factory(rest.Options{})},
		resilient.Options{Registerer: prometheus.NewRegistry(), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { set.Close() })
	c, ok := set.Get("anadolu")
	if !ok {
		t.Fatal("insurer anadolu not configured")
	}
	verify := func(policy string) (insurance.Verdict, error) {
		return c.Verify(context.Background(), insurance.Query{PolicyNumber: policy, Plate: "34ABC123", ServiceType: "tow", IncidentAt: time.Now()})
	}

	if v, err := verify("POL-1"); err != nil || !v.Covered || v.Coverage == nil || v.Coverage.MaxTowKm != 100 {
		t.Fatalf("ok: %+v, %v", v, err)
	}
	if v, err := verify("REJ-1"); err != nil || v.Covered || v.Reason == "" {
		t.Fatalf("REJ: %+v, %v; want not covered with a reason", v, err)
	}

	// Garbage, in every shape the mock has: bad payload, never retried.
	mock.Set(mockinsurer.Behaviour{Bearer: "tok", Mode: mockinsurer.ModeGarbage})
	before := mock.Stats().Calls
	for range 3 { // fewer than failures: the breaker stays closed
		if _, err := verify("POL-1"); !errors.Is(err, insurance.ErrBadPayload) {
			t.Fatalf("garbage: err = %v, want bad payload", err)
		}
	}
	if got := mock.Stats().Calls - before; got != 3 {
		t.Errorf("garbage reached the mock %d times for 3 calls; bad payloads must not be retried", got)
	}
	mock.Set(mockinsurer.Behaviour{Bearer: "tok"})
	if _, err := verify("POL-1"); err != nil {
		t.Fatal(err) // resets the consecutive failures
	}

	// Down (503s and dropped connections alternately): the breaker opens,
	// then nothing reaches the mock.
	mock.Set(mockinsurer.Behaviour{Bearer: "tok", Mode: mockinsurer.ModeDown})
	for i := range 4 {
		_, err := verify("POL-1")
		if k := insurance.Kind(err); k != insurance.KindServer && k != insurance.KindRefused {
			t.Fatalf("down call %d: err = %v (kind %s)", i, err, k)
		}
	}
	if got := c.Health().Breaker; got != "open" {
		t.Fatalf("breaker %s after the outage, want open", got)
	}
	before = mock.Stats().Calls
	for range 10 {
		if _, err := verify("POL-1"); !errors.Is(err, insurance.ErrUnavailable) {
			t.Fatalf("err = %v, want unavailable", err)
		}
	}
	if got := mock.Stats().Calls - before; got != 0 {
		t.Errorf("%d calls reached the mock while the breaker was open", got)
	}

	// Recovery: after open_for one probe, and the breaker closes.
	mock.Set(mockinsurer.Behaviour{Bearer: "tok"})
	clock.Advance(250 * time.Millisecond) // open_for
	if v, err := verify("POL-1"); err != nil || !v.Covered {
		t.Fatalf("probe: %+v, %v", v, err)
	}
	if got := c.Health().Breaker; got != "closed" {
		t.Errorf("breaker %s after recovery, want closed", got)
	}
	if got := mock.Stats().Rejected; got != 0 {
		t.Errorf("the mock rejected %d calls: credentials not sent?", got)
	}
}

func env(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}
