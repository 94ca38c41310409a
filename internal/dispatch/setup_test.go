package dispatch_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/dispatch"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/geo"
	"github.com/yolda/yolda/internal/geo/memory"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
	"github.com/yolda/yolda/internal/store/postgres"
	"github.com/yolda/yolda/internal/store/postgres/pgtest"
	"github.com/yolda/yolda/internal/store/sqlite"
	"github.com/yolda/yolda/internal/store/storetest"
)

var (
	fatih = geo.Point{Lat: 41.0082, Lng: 28.9784}
	start = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
)

// north is a point km north of Fatih.
func north(km float64) geo.Point { return geo.Point{Lat: fatih.Lat + km/111.195, Lng: fatih.Lng} }

// clock is a settable clock shared by every service of a harness.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// engines open a fresh store of each engine.
var engines = map[string]func(t testing.TB) storetest.DispatchStore{
	"sqlite": func(t testing.TB) storetest.DispatchStore {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "yolda.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	},
	"postgres": func(t testing.TB) storetest.DispatchStore {
		s, err := postgres.Open(context.Background(), pgtest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	},
}

// harness is dispatch over a real store and the in-process position
// index, with the relay replaced by reading the outbox.
type harness struct {
	t        *testing.T
	store    storetest.DispatchStore
	clock    *clock // nil on the wall clock
	now      func() time.Time
	accounts *account.Service
	index    *memory.Index
	fleet    *fleet.Service
	intake   *intake.Service
	svc      *dispatch.Service
	worker   *dispatch.Worker
	expirer  *dispatch.Expirer
	cfg      dispatch.Config

	mu      sync.Mutex
	relayed []outbox.Message
}

type option func(*dispatch.Config)

// setup builds a harness on a settable clock starting at start.
func setup(t *testing.T, engine string, opts ...option) *harness {
	t.Helper()
	c := &clock{t: start}
	return build(t, engine, c.Now, c, opts...)
}

// setupRealTime builds a harness on the wall clock, for tests of
// concurrency.
func setupRealTime(t *testing.T, engine string, opts ...option) *harness {
	t.Helper()
	return build(t, engine, time.Now, nil, opts...)
}

func build(t *testing.T, engine string, now func() time.Time, c *clock, opts ...option) *harness {
	t.Helper()
	st := engines[engine](t)
	cfg := dispatch.Config{RadiiKm: []float64{5, 10, 20, 40}, OfferTimeout: 30 * time.Second, Wait: time.Minute, BatchThreshold: -1}
	for _, o := range opts {
		o(&cfg)
	}
	h := &harness{t: t, store: st, clock: c, now: now, index: memory.New(memory.Options{}), cfg: cfg}
	var err error
	if h.accounts, err = account.NewService(st, &account.Hasher{Memory: 64, Time: 1, Threads: 1}); err != nil {
		t.Fatal(err)
	}
	h.fleet = fleet.NewService(st, h.index, fleet.Options{Now: now, StaleAfter: time.Hour})
	h.intake = intake.NewService(st, intake.Options{Now: now, Offers: st, Batch: intake.BatchOptions{Writers: 2},
		DriverFreed: func(ctx context.Context, id string) { _, _ = h.fleet.Refresh(ctx, id) }})
	t.Cleanup(h.intake.Close)
	if h.expirer, err = dispatch.NewExpirer(st, 50*time.Millisecond, now, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	h.svc = dispatch.NewService(st, st, h.fleet, h.index, nil, dispatch.ServiceOptions{Now: now, Expired: h.expirer.WakeNow})
	if h.worker, err = dispatch.NewWorker(st, h.fleet, dispatch.WorkerOptions{Config: cfg, Now: now, Deadline: h.expirer.Wake}); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) user(name string, role identity.Role, caps ...string) identity.Principal {
	h.t.Helper()
	n := account.NewUser{Username: name, Password: "password-" + name, Role: role}
	if role == identity.Driver {
		n.VehiclePlate, n.Capabilities = "34"+name, caps
	}
	u, err := h.accounts.Add(context.Background(), n)
	if err != nil {
		h.t.Fatal(err)
	}
	return identity.Principal{UserID: u.ID, Username: u.Username, Role: role}
}

func (h *harness) driver(name string) identity.Principal {
	return h.user(name, identity.Driver, "tow", "jump_start", "flat_tire")
}

func ptr(f float64) *float64 { return &f }

// online puts a driver online at p, now.
func (h *harness) online(who identity.Principal, p geo.Point) {
	h.t.Helper()
	ctx := context.Background()
	if _, err := h.fleet.SetAvailability(ctx, who, fleet.Online); err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.fleet.ReportPosition(ctx, who, fleet.PositionReport{Lat: ptr(p.Lat), Lng: ptr(p.Lng),
		RecordedAt: h.now().Format(time.RFC3339Nano)}); err != nil {
		h.t.Fatal(err)
	}
}

func submission(st intake.ServiceType, p geo.Point) intake.Submission {
	s := intake.Submission{
		ServiceType: st,
		Location:    &intake.LocationInput{Lat: ptr(p.Lat), Lng: ptr(p.Lng), Province: "İstanbul"},
		Vehicle:     &intake.Vehicle{Plate: "34ABC123", Type: "car"},
		Policy:      &intake.Policy{Insurer: "anadolu", PolicyNumber: "POL-1"},
		Contact:     &intake.Contact{Name: "Ayşe Yılmaz", Phone: "+905551112233"},
	}
	if st == intake.Tow {
		s.Destination = &intake.LocationInput{Lat: ptr(p.Lat + 0.05), Lng: ptr(p.Lng)}
	}
	return s
}

// request submits a request at p; it starts dispatching.
func (h *harness) request(who identity.Principal, st intake.ServiceType, p geo.Point) intake.Request {
	h.t.Helper()
	c, err := h.intake.Create(context.Background(), who, submission(st, p), "")
	if err != nil {
		h.t.Fatal(err)
	}
	if c.Request.Status != intake.StatusDispatching {
		h.t.Fatalf("request is %s, want dispatching", c.Request.Status)
	}
	return c.Request
}

func (h *harness) get(id string) intake.Request {
	h.t.Helper()
	r, err := h.store.Request(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

// relay takes the outbox's unsent messages, as the relay would publish
// them, and returns them.
func (h *harness) relay() []outbox.Message {
	h.t.Helper()
	var got []outbox.Message
	for {
		n, err := h.store.RelayOutbox(context.Background(), 1000, time.Minute, func(ms []outbox.Message) []outbox.Publication {
			ok := make([]outbox.Publication, len(ms))
			for i := range ms {
				ok[i] = outbox.Publication{Stream: "JOBS", StreamSeq: uint64(i + 1)}
			}
			got = append(got, ms...)
			return ok
		})
		if err != nil {
			h.t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	h.mu.Lock()
	h.relayed = append(h.relayed, got...)
	h.mu.Unlock()
	return got
}

// jobsIn picks the dispatch jobs out of relayed messages.
func jobsIn(t testing.TB, msgs []outbox.Message) []dispatch.Job {
	var jobs []dispatch.Job
	for _, m := range msgs {
		if !strings.HasPrefix(m.Subject, outbox.SubjectDispatchRequest+".") {
			continue
		}
		var env outbox.Envelope
		if err := json.Unmarshal(m.Payload, &env); err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, dispatch.Job{MessageID: env.ID, RequestID: env.RequestID})
	}
	return jobs
}

// dispatch relays the outbox and hands its dispatch jobs to the worker as
// one batch, returning each job's outcome by request id.
func (h *harness) dispatch() map[string]error {
	h.t.Helper()
	jobs := jobsIn(h.t, h.relay())
	out := map[string]error{}
	if len(jobs) == 0 {
		return out
	}
	res, err := h.worker.Handle(context.Background(), jobs)
	if err != nil {
		h.t.Fatalf("Handle: %v", err)
	}
	for i, j := range jobs {
		out[j.RequestID] = res[i]
	}
	return out
}

// events returns the data of relayed events of a type, for a request.
func (h *harness) events(typ, requestID string) []json.RawMessage {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []json.RawMessage
	for _, m := range h.relayed {
		var env outbox.Envelope
		if json.Unmarshal(m.Payload, &env) == nil && env.Type == typ && env.RequestID == requestID {
			out = append(out, env.Data)
		}
	}
	return out
}

// offers returns the driver's open offers.
func (h *harness) offers(who identity.Principal) []dispatch.OfferView {
	h.t.Helper()
	got, err := h.svc.Offers(context.Background(), who)
	if err != nil {
		h.t.Fatal(err)
	}
	return got
}

// onlyOffer returns the driver's one open offer.
func (h *harness) onlyOffer(who identity.Principal) dispatch.OfferView {
	h.t.Helper()
	got := h.offers(who)
	if len(got) != 1 {
		h.t.Fatalf("%s has %d open offers, want 1: %+v", who.Username, len(got), got)
	}
	return got[0]
}

func (h *harness) snapshot(id string) dispatch.Snapshot {
	h.t.Helper()
	s, err := h.store.Snapshots(context.Background(), []string{id})
	if err != nil || len(s) != 1 {
		h.t.Fatalf("Snapshots(%s): %d, %v", id, len(s), err)
	}
	return s[0]
}

func statuses(r intake.Request) []intake.Status {
	out := make([]intake.Status, len(r.Timeline))
	for i, e := range r.Timeline {
		out[i] = e.Status
	}
	return out
}

func isRetry(err error) bool {
	var r *dispatch.RetryError
	return errors.As(err, &r)
}

// must returns v, or panics on err (the test fails with the panic).
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func name(i int) string { return fmt.Sprintf("d%03d", i) }
