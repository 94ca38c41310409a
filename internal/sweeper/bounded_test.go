package sweeper_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/bus"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
	"github.com/yolda/yolda/internal/relay"
	"github.com/yolda/yolda/internal/store/postgres"
	"github.com/yolda/yolda/internal/store/postgres/pgtest"
	"github.com/yolda/yolda/internal/store/sqlite"
	"github.com/yolda/yolda/internal/sweeper"
)

// platformStore is what these tests touch.
type platformStore interface {
	intake.Store
	account.Store
	relay.Store
	sweeper.Store
}

var engines = map[string]func(t *testing.T) platformStore{
	"sqlite": func(t *testing.T) platformStore {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "y.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	},
	"postgres": func(t *testing.T) platformStore {
		s, err := postgres.Open(context.Background(), pgtest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	},
}

// clock is a fake clock the test moves by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }

// platform is a store, an embedded broker, a relay (on the real clock) and
// intake and a sweeper on the fake clock.
type platform struct {
	store   platformStore
	bus     *bus.Bus
	intake  *intake.Service
	sweeper *sweeper.Sweeper
	clock   *clock
	owner   identity.Principal
}

func newPlatform(t *testing.T, engine string, o intake.Options) *platform {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	store := engines[engine](t)
	log := slog.New(slog.DiscardHandler)
	b, err := bus.Connect(ctx, bus.Config{DataDir: t.TempDir()}, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	rel := relay.New(store, b, relay.Options{}, log, nil)
	c := &clock{now: time.Now().UTC().Truncate(time.Second)}
	o.Now, o.Committed = c.Now, rel.Wake
	svc := intake.NewService(store, o)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = rel.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait(); svc.Close(); b.Close() })
	accounts, _ := account.NewService(store, &account.Hasher{Memory: 64, Time: 1, Threads: 1})
	u, err := accounts.Add(ctx, account.NewUser{Username: "ayse", Password: "ayse-password", Role: identity.Customer})
	if err != nil {
		t.Fatal(err)
	}
	sw := sweeper.New(store, b, svc.Jobs, sweeper.DefaultRules, sweeper.Options{Now: c.Now}, log, nil)
	return &platform{store: store, bus: b, intake: svc, sweeper: sw, clock: c, owner: identity.Principal{UserID: u.ID, Role: u.Role}}
}

func (p *platform) create(t *testing.T, n int, insurer string) []string {
	t.Helper()
	var ids []string
	for i := range n {
		lat, lng := 41.0, 29.0
		sub := intake.Submission{ServiceType: intake.Lockout, Location: &intake.LocationInput{Lat: &lat, Lng: &lng},
			Vehicle: &intake.Vehicle{Plate: "34AB12", Type: "car"}, Policy: &intake.Policy{Insurer: insurer, PolicyNumber: fmt.Sprintf("P-%d", i)},
			Contact: &intake.Contact{Name: "Ayşe", Phone: "+905551112233"}}
		c, err := p.intake.Create(context.Background(), p.owner, sub, "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.Request.ID)
	}
	return ids
}

// settle waits until the relay has published everything committed.
func (p *platform) settle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		n, _, err := p.store.OutboxBacklog(context.Background())
		if err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox not drained: %d rows (%v)", n, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (p *platform) msgs(t *testing.T, stream string) uint64 {
	t.Helper()
	st, err := p.bus.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	return st.Msgs
}

// hour sweeps every 10 s of simulated time for an hour, letting the relay
// publish what each sweep committed, and checks the streams after each
// sweep. It returns what the sweeps did in all.
func (p *platform) hour(t *testing.T, check func(sweep int)) (nudged, parked int) {
	t.Helper()
	for i := range 360 {
		p.clock.Add(10 * time.Second)
		res, err := p.sweeper.SweepOnce(context.Background())
		if err != nil {
			t.Fatalf("sweep %d: %v", i, err)
		}
		for _, n := range res.Nudged {
			nudged += n
		}
		for _, n := range res.Parked {
			parked += n
		}
		p.settle(t)
		check(i)
		if t.Failed() {
			t.FailNow()
		}
	}
	return nudged, parked
}

// With no insurers file and no dispatch consumer (the README's first run),
// an hour of sweeps leaves the broker exactly as intake left it: one
// dispatch job per request, nothing for an insurer. Lost jobs are committed
// again once each, never piled up.
func TestAnHourOfSweepsWithoutConsumersStaysBounded(t *testing.T) {
	for engine := range engines {
		t.Run(engine, func(t *testing.T) {
			const n = 40
			p := newPlatform(t, engine, intake.Options{})
			p.create(t, n, "anadolu")
			p.settle(t)
			if jobs, events := p.msgs(t, bus.StreamJobs), p.msgs(t, bus.StreamEvents); jobs != n || events != 2*n {
				t.Fatalf("after intake JOBS %d, EVENTS %d; want %d and %d", jobs, events, n, 2*n)
			}
			nudged, parked := p.hour(t, func(i int) {
				if jobs, events := p.msgs(t, bus.StreamJobs), p.msgs(t, bus.StreamEvents); jobs != n || events != 2*n {
					t.Errorf("sweep %d: JOBS %d, EVENTS %d; want %d and %d", i, jobs, events, n, 2*n)
				}
			})
			// Each request was looked at every 2 minutes for an hour.
			if nudged != 0 || parked < n*25 {
				t.Errorf("an hour of sweeps: %d jobs committed again, %d looks; want 0 and about %d", nudged, parked, n*30)
			}
			t.Logf("an hour of sweeps over %d waiting requests: %d looks, %d re-commits", n, parked, nudged)

			// The broker loses every job: each is committed again once,
			// and the next hour backs off instead of piling up.
			js := p.bus.JetStream()
			s, err := js.Stream(context.Background(), bus.StreamJobs)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Purge(context.Background()); err != nil {
				t.Fatal(err)
			}
			nudged, _ = p.hour(t, func(i int) {
				if jobs := p.msgs(t, bus.StreamJobs); jobs > n {
					t.Errorf("sweep %d: JOBS %d, more than one job per request", i, jobs)
				}
			})
			if jobs := p.msgs(t, bus.StreamJobs); nudged != n || jobs != n {
				t.Errorf("after losing every job: %d re-commits, JOBS %d; want %d and %d", nudged, jobs, n, n)
			}
		})
	}
}

// An insurer down for an hour: its checks are parked in the broker (the
// worker sends each back with a delay while the breaker is open), and the
// sweeper, seeing them there, commits none again: one parked check per
// request all hour, not one per sweep.
func TestInsurerDownForAnHourLeavesOneParkedCheckPerRequest(t *testing.T) {
	for engine := range engines {
		t.Run(engine, func(t *testing.T) {
			const n = 30
			p := newPlatform(t, engine, intake.Options{
				KnownInsurer:        func(code string) bool { return code == "anadolu" },
				DispatchBeforeCover: func(string) bool { return false },
			})
			// The insurer's consumer, behind an open breaker: every check
			// goes back to the broker with a delay.
			var deliveries atomic.Int64
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				_ = bus.Consume(ctx, p.bus, bus.ConsumerConfig{Stream: bus.StreamJobs, Durable: "insurance-anadolu",
					FilterSubject: outbox.InsuranceVerifyFilter("anadolu"), Concurrency: 4},
					func(context.Context, bus.Delivery) error {
						deliveries.Add(1)
						return bus.Retry(200 * time.Millisecond)
					})
			}()
			t.Cleanup(func() { cancel(); <-done })
			ids := p.create(t, n, "anadolu")
			p.settle(t)
			deadline := time.Now().Add(20 * time.Second)
			for deliveries.Load() < n && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if deliveries.Load() < n {
				t.Fatalf("the insurer's consumer got %d of %d checks", deliveries.Load(), n)
			}
			nudged, parked := p.hour(t, func(i int) {
				if jobs := p.msgs(t, bus.StreamJobs); jobs != n {
					t.Errorf("sweep %d: JOBS %d, want one parked check per request (%d)", i, jobs, n)
				}
			})
			if nudged != 0 || parked < n*25 {
				t.Errorf("an hour with the insurer down: %d checks committed again, %d looks", nudged, parked)
			}
			for _, id := range ids {
				if ok, err := p.bus.HasMessage(context.Background(), outbox.InsuranceVerifySubject("anadolu", id)); err != nil || !ok {
					t.Errorf("check of %s not parked in the broker: %v %v", id, ok, err)
				}
			}
			t.Logf("insurer down for an hour: %d requests, %d deliveries of their checks, %d sweeper looks, %d re-commits",
				n, deliveries.Load(), parked, nudged)
		})
	}
}
