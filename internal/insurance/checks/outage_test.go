package checks_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/bus"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/insurance"
	"github.com/yolda/yolda/internal/insurance/checks"
	"github.com/yolda/yolda/internal/insurance/mockinsurer"
	"github.com/yolda/yolda/internal/insurance/resilient"
	"github.com/yolda/yolda/internal/insurance/rest"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
	"github.com/yolda/yolda/internal/relay"
	"github.com/yolda/yolda/internal/store/sqlite"
)

// platform is the real chain for insurance checks: SQLite, an embedded
// broker, the relay, intake and the insurance worker, against mock
// insurers over HTTP.
type platform struct {
	store    *sqlite.Store
	intake   *intake.Service
	customer identity.Principal
	mocks    map[string]*mockinsurer.Server
}

func startPlatform(t *testing.T, insurers map[string]bool, mockBehaviour map[string]mockinsurer.Behaviour) *platform {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "y.db"))
	if err != nil {
		t.Fatal(err)
	}
	p := &platform{store: store, mocks: map[string]*mockinsurer.Server{}}
	var cfgs []insurance.Config
	for code, waits := range insurers {
		mock := mockinsurer.New(mockBehaviour[code])
		srv := httptest.NewServer(mock)
		p.mocks[code] = mock
		c := insurance.Config{Code: code, Name: code, BaseURL: srv.URL, Timeout: 300 * time.Millisecond,
			VerifyBeforeDispatch: waits, Patience: time.Minute}.Default()
		c.Breaker.Failures, c.Breaker.OpenFor = 3, time.Second
		c.Retry.BaseDelay, c.Retry.MaxDelay = 10*time.Millisecond, 50*time.Millisecond
		cfgs = append(cfgs, c)
		t.Cleanup(func() { mock.Close(); srv.Close() })
	}
	clients, err := resilient.NewClients(cfgs, map[string]insurance.Factory{rest.Name: rest.Factory(rest.Options{})}, resilient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.Connect(ctx, bus.Config{DataDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	rel := relay.New(store, b, relay.Options{}, nil, nil)
	p.intake = intake.NewService(store, intake.Options{Committed: rel.Wake,
		KnownInsurer:        func(code string) bool { _, ok := insurers[code]; return ok },
		DispatchBeforeCover: func(code string) bool { return !insurers[code] }})
	accounts, err := account.NewService(store, &account.Hasher{Memory: 64, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	u, err := accounts.Add(ctx, account.NewUser{Username: "ayse", Password: "ayse-password", Role: identity.Customer})
	if err != nil {
		t.Fatalf("add the customer: %v", err)
	}
	p.customer = identity.Principal{UserID: u.ID, Role: u.Role}
	worker := checks.NewWorker(clients, p.intake, store, nil, nil)
	var wg sync.WaitGroup
	run := func(f func() error) { wg.Add(1); go func() { defer wg.Done(); _ = f() }() }
	run(func() error { return rel.Run(ctx) })
	for _, c := range cfgs {
		run(func() error { return consume(ctx, b, c, worker) })
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		p.intake.Close()
		b.Close()
		clients.Close()
		store.Close()
	})
	return p
}

func (p *platform) create(t *testing.T, insurer string, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		lat, lng := 41.0, 29.0
		c, err := p.intake.Create(context.Background(), p.customer, intake.Submission{ServiceType: intake.JumpStart,
			Location: &intake.LocationInput{Lat: &lat, Lng: &lng}, Vehicle: &intake.Vehicle{Plate: "34AB12", Type: "car"},
			Policy:  &intake.Policy{Insurer: insurer, PolicyNumber: fmt.Sprintf("POL-%d", i)},
			Contact: &intake.Contact{Name: "Ayşe", Phone: "+905551112233"}}, "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.Request.ID)
	}
	return ids
}

// settled counts the requests whose insurance is no longer pending.
func (p *platform) settled(t *testing.T, ids []string) (n int, byStatus map[intake.Status]int) {
	t.Helper()
	byStatus = map[intake.Status]int{}
	for _, id := range ids {
		r, err := p.store.Request(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		byStatus[r.Status]++
		if r.Insurance.Status != intake.InsurancePending {
			n++
		}
	}
	return n, byStatus
}

// checksPerRequest counts request.insurance_checked events per request,
// over every outbox row, sent or not.
func (p *platform) checksPerRequest(t *testing.T) map[string]int {
	t.Helper()
	published, err := p.store.OutboxPublishedAfter(context.Background(), bus.StreamEvents, time.Time{}, 0, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	msgs, _ := p.store.PendingOutbox(context.Background(), 1_000_000)
	for _, m := range published {
		msgs = append(msgs, m.Message)
	}
	out := map[string]int{}
	for _, m := range msgs {
		if m.Subject != outbox.EventSubject(intake.EventRequestInsuranceCheck) {
			continue
		}
		var env outbox.Envelope
		if err := json.Unmarshal(m.Payload, &env); err != nil {
			t.Fatal(err)
		}
		out[env.RequestID]++
	}
	return out
}

func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// An insurer fully down for a while, then back: its requests are accepted
// and wait, every check completes once it is back, none is recorded twice,
// and the other insurer's checks go through meanwhile.
func TestInsurerOutageAndRecovery(t *testing.T) {
	p := startPlatform(t, map[string]bool{"anadolu": true, "axa": false}, map[string]mockinsurer.Behaviour{
		"anadolu": {Mode: mockinsurer.ModeDown, Latency: 5 * time.Millisecond},
		"axa":     {Latency: 20 * time.Millisecond},
	})
	down := p.create(t, "anadolu", 40)
	healthy := p.create(t, "axa", 40)

	start := time.Now()
	waitUntil(t, "the healthy insurer's checks", 20*time.Second, func() bool { n, _ := p.settled(t, healthy); return n == 40 })
	healthyTook := time.Since(start)
	n, byStatus := p.settled(t, down)
	if n != 0 || byStatus[intake.StatusAwaitingInsurance] != 40 {
		t.Fatalf("while anadolu is down: %d settled, statuses %v (want 40 awaiting_insurance)", n, byStatus)
	}
	time.Sleep(2 * time.Second) // the outage goes on; the breaker keeps calls away
	callsDuringOutage := p.mocks["anadolu"].Stats().Calls

	p.mocks["anadolu"].Set(mockinsurer.Behaviour{Latency: 5 * time.Millisecond})
	recovered := time.Now()
	waitUntil(t, "every pending check after recovery", 40*time.Second, func() bool { n, _ := p.settled(t, down); return n == 40 })
	_, byStatus = p.settled(t, down)
	if byStatus[intake.StatusDispatching] != 40 {
		t.Errorf("after recovery: %v, want 40 dispatching", byStatus)
	}
	checks := p.checksPerRequest(t)
	twice := 0
	for _, id := range append(down, healthy...) {
		if checks[id] != 1 {
			twice++
		}
	}
	t.Logf("healthy insurer settled 40 checks in %s during the outage; the dead one got %d calls for 40 checks in %s of outage (breaker); all 40 settled %s after recovery",
		healthyTook.Round(time.Millisecond), callsDuringOutage, recovered.Sub(start).Round(time.Millisecond), time.Since(recovered).Round(time.Millisecond))
	if twice != 0 {
		t.Errorf("%d requests were not checked exactly once", twice)
	}
	if callsDuringOutage > 200 {
		t.Errorf("%d calls reached a dead insurer for 40 checks: the breaker did not hold them back", callsDuringOutage)
	}
}

// Past the insurer's patience a check goes to manual review, and the
// request stays awaiting insurance for an operator.
func TestPatienceEndsInManualReview(t *testing.T) {
	p := startPlatform(t, map[string]bool{"anadolu": true}, map[string]mockinsurer.Behaviour{"anadolu": {Mode: mockinsurer.ModeHang}})
	ids := p.create(t, "anadolu", 3)
	// Age the requests past the patience by rewriting their creation time.
	for _, id := range ids {
		if _, err := p.store.UpdateRequest(context.Background(), id, func(r *intake.Request) (intake.Change, error) {
			r.CreatedAt = r.CreatedAt.Add(-2 * time.Minute)
			r.Version++
			return intake.Change{}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "manual review", 30*time.Second, func() bool { n, _ := p.settled(t, ids); return n == 3 })
	for _, id := range ids {
		r, _ := p.store.Request(context.Background(), id)
		if r.Insurance.Status != intake.InsuranceManualReview || r.Status != intake.StatusAwaitingInsurance || r.Insurance.Reason == nil {
			t.Errorf("%s: %s / %s", id, r.Status, r.Insurance.Status)
		}
	}
}

// consume runs the worker on one insurer's checks as internal/app does:
// a RetryAfter is a delayed redelivery.
func consume(ctx context.Context, b *bus.Bus, c insurance.Config, w *checks.Worker) error {
	return bus.Consume(ctx, b, bus.ConsumerConfig{
		Stream: bus.StreamJobs, Durable: checks.ConsumerPrefix + c.Code, FilterSubject: outbox.InsuranceVerifyFilter(c.Code),
		AckWait: c.CheckBudget(), Concurrency: c.Bulkhead, MaxAckPending: 100_000,
	}, func(ctx context.Context, d bus.Delivery) error {
		err := w.Handle(ctx, d.Data, d.NumDelivered)
		var later *checks.RetryAfter
		if errors.As(err, &later) {
			return fmt.Errorf("%w: %w", err, bus.Retry(later.Delay))
		}
		return err
	})
}
