package checks_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/insurance"
	"github.com/yolda/yolda/internal/insurance/checks"
	"github.com/yolda/yolda/internal/insurance/mockinsurer"
	"github.com/yolda/yolda/internal/insurance/resilient"
	"github.com/yolda/yolda/internal/insurance/rest"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
	"github.com/yolda/yolda/internal/store/postgres"
	"github.com/yolda/yolda/internal/store/postgres/pgtest"
	"github.com/yolda/yolda/internal/store/sqlite"
)

// callStore is what the call tests need of an operational store.
type callStore interface {
	intake.Store
	account.Store
	checks.Outbox
	PendingOutbox(ctx context.Context, limit int) ([]outbox.Message, error)
}

// callRig is the insurance worker on a real store, against the mock
// insurer over HTTP, driven one delivery at a time (no broker: the test
// is the consumer, so it can deliver a job twice).
type callRig struct {
	store    callStore
	intake   *intake.Service
	worker   *checks.Worker
	mock     *mockinsurer.Server
	customer identity.Principal
	clock    *jumpClock
}

// jumpClock is the real clock, plus what a test jumped it by: it moves an
// open breaker past its open_for without waiting for it.
type jumpClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *jumpClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *jumpClock) jump(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

func forEachEngine(t *testing.T, fn func(t *testing.T, s callStore)) {
	t.Run("sqlite", func(t *testing.T) {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "y.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		fn(t, s)
	})
	t.Run("postgres", func(t *testing.T) {
		s, err := postgres.Open(context.Background(), pgtest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		fn(t, s)
	})
}

func newCallRig(t *testing.T, s callStore, b mockinsurer.Behaviour, tune func(*insurance.Config)) *callRig {
	t.Helper()
	mock := mockinsurer.New(b)
	srv := httptest.NewServer(mock)
	t.Cleanup(func() { mock.Close(); srv.Close() })
	cfg := insurance.Config{Code: "anadolu", Name: "Anadolu", BaseURL: srv.URL, Timeout: 2 * time.Second,
		VerifyBeforeDispatch: true, Patience: time.Hour}.Default()
	cfg.Retry.BaseDelay, cfg.Retry.MaxDelay = time.Millisecond, 5*time.Millisecond
	if tune != nil {
		tune(&cfg)
	}
	clock := &jumpClock{}
	clients, err := resilient.NewClients([]insurance.Config{cfg}, map[string]insurance.Factory{rest.Name: rest.Factory(rest.Options{})},
		resilient.Options{Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { clients.Close() })
	svc := intake.NewService(s, intake.Options{KnownInsurer: func(code string) bool { return code == "anadolu" },
		DispatchBeforeCover: func(string) bool { return false }})
	t.Cleanup(svc.Close)
	accounts, err := account.NewService(s, &account.Hasher{Memory: 64, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	u, err := accounts.Add(context.Background(), account.NewUser{Username: "ayse", Password: "ayse-password", Role: identity.Customer})
	if err != nil {
		t.Fatal(err)
	}
	return &callRig{store: s, intake: svc, mock: mock, customer: identity.Principal{UserID: u.ID, Role: u.Role}, clock: clock,
		worker: checks.NewWorker(clients, svc, s, nil, nil)}
}

// create submits a request with policy and returns it with its
// insurance.verify job as the relay would deliver it.
func (r *callRig) create(t *testing.T, policy string) (string, []byte) {
	t.Helper()
	lat, lng := 41.0, 29.0
	c, err := r.intake.Create(context.Background(), r.customer, intake.Submission{ServiceType: intake.JumpStart,
		Location: &intake.LocationInput{Lat: &lat, Lng: &lng}, Vehicle: &intake.Vehicle{Plate: "34AB12", Type: "car"},
		Policy:  &intake.Policy{Insurer: "anadolu", PolicyNumber: policy},
		Contact: &intake.Contact{Name: "Ayşe Yılmaz", Phone: "+905551112233"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range r.pending(t) {
		if m.Subject == outbox.InsuranceVerifySubject("anadolu", c.Request.ID) {
			return c.Request.ID, m.Payload
		}
	}
	t.Fatalf("no insurance.verify job for %s", c.Request.ID)
	return "", nil
}

func (r *callRig) pending(t *testing.T) []outbox.Message {
	t.Helper()
	msgs, err := r.store.PendingOutbox(context.Background(), 100_000)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// callEvent is an insurance.call event as committed.
type callEvent struct {
	env     outbox.Envelope
	call    checks.Call
	payload string
}

// calls returns the committed insurance.call events of requestID.
func (r *callRig) calls(t *testing.T, requestID string) []callEvent {
	t.Helper()
	var out []callEvent
	for _, m := range r.pending(t) {
		if m.Subject != outbox.EventSubject(outbox.EventInsuranceCall) {
			continue
		}
		var e callEvent
		if err := json.Unmarshal(m.Payload, &e.env); err != nil {
			t.Fatal(err)
		}
		if e.env.RequestID != requestID {
			continue
		}
		if e.env.Type != outbox.EventInsuranceCall {
			t.Errorf("event on %s has type %q", m.Subject, e.env.Type)
		}
		if err := json.Unmarshal(e.env.Data, &e.call); err != nil {
			t.Fatal(err)
		}
		e.payload = string(m.Payload)
		out = append(out, e)
	}
	return out
}

// one checks that requestID has exactly one call event, without personal
// data, and returns it.
func one(t *testing.T, evs []callEvent) callEvent {
	t.Helper()
	if len(evs) != 1 {
		t.Fatalf("%d insurance.call events, want 1: %+v", len(evs), evs)
	}
	e := evs[0]
	for _, personal := range []string{"POL-", "REJ-", "34AB12", "Ayşe", "+90555"} {
		if strings.Contains(e.payload, personal) {
			t.Errorf("insurance.call event carries personal data %q: %s", personal, e.payload)
		}
	}
	if e.env.Seq != 0 || e.call.Insurer != "anadolu" || e.call.At.IsZero() || e.env.OccurredAt.Before(e.call.At) {
		t.Errorf("event: seq %d, insurer %q, at %s, occurred %s", e.env.Seq, e.call.Insurer, e.call.At, e.env.OccurredAt)
	}
	return e
}

// An approved and a rejected check each leave one insurance.call event,
// with the outcome, latency and attempts of the call, in the transaction
// of the outcome; delivering the job again makes no second one.
func TestSettledChecksRecordOneCall(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s callStore) {
		rig := newCallRig(t, s, mockinsurer.Behaviour{Latency: 30 * time.Millisecond}, nil)
		ctx := context.Background()
		for _, c := range []struct {
			policy  string
			outcome string
			status  intake.InsuranceStatus
		}{
			{"POL-1", insurance.OutcomeCovered, intake.InsuranceApproved},
			{"REJ-1", insurance.OutcomeNotCovered, intake.InsuranceRejected},
		} {
			id, job := rig.create(t, c.policy)
			if err := rig.worker.Handle(ctx, job, 1); err != nil {
				t.Fatal(err)
			}
			r, err := s.Request(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if r.Insurance.Status != c.status {
				t.Fatalf("%s: insurance %s, want %s", c.policy, r.Insurance.Status, c.status)
			}
			e := one(t, rig.calls(t, id))
			if e.call.Outcome != c.outcome || e.call.ErrorKind != "" || e.call.Attempts != 1 || e.call.LatencyMs < 30 || e.call.LatencyMs > 30_000 {
				t.Errorf("%s: call %+v", c.policy, e.call)
			}
			// Redelivered (its ack lost): settled already, no call, no event.
			if err := rig.worker.Handle(ctx, job, 2); err != nil {
				t.Fatal(err)
			}
			if evs := rig.calls(t, id); len(evs) != 1 {
				t.Errorf("%s redelivered: %d insurance.call events", c.policy, len(evs))
			}
		}
		if n := rig.mock.Stats().Calls; n != 2 {
			t.Errorf("the insurer got %d calls, want 2", n)
		}
	})
}

// A failing check is deferred, and its call (every attempt) is recorded on
// its own, as an error with its kind; a check the open breaker turns away
// reached no insurer and records none; once the insurer answers, the check
// settles with a call of its own.
func TestDeferredChecksRecordTheirCalls(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s callStore) {
		rig := newCallRig(t, s, mockinsurer.Behaviour{Mode: mockinsurer.ModeDown, DownStyle: mockinsurer.Down503},
			func(c *insurance.Config) { c.Breaker.Failures, c.Breaker.OpenFor = 1, time.Hour })
		ctx := context.Background()
		id, job := rig.create(t, "POL-7")
		err := rig.worker.Handle(ctx, job, 1)
		if _, later := errors.AsType[*checks.RetryAfter](err); !later || !errors.Is(err, insurance.ErrServer) {
			t.Fatalf("insurer down: %v, want a deferral", err)
		}
		e := one(t, rig.calls(t, id))
		if e.call.Outcome != insurance.OutcomeError || e.call.ErrorKind != insurance.KindServer || e.call.Attempts != insurance.DefaultAttempts {
			t.Errorf("failed call: %+v", e.call)
		}

		// The breaker is open now: nothing is sent, nothing recorded.
		err = rig.worker.Handle(ctx, job, 2)
		if !errors.Is(err, insurance.ErrUnavailable) {
			t.Fatalf("breaker open: %v", err)
		}
		if evs := rig.calls(t, id); len(evs) != 1 {
			t.Errorf("a check the breaker turned away recorded a call: %d events", len(evs))
		}

		rig.mock.Set(mockinsurer.Behaviour{})
		rig.clock.jump(time.Hour) // the breaker half-opens: the next check is its probe
		if err := rig.worker.Handle(ctx, job, 3); err != nil {
			t.Fatalf("after recovery: %v", err)
		}
		evs := rig.calls(t, id)
		if len(evs) != 2 || evs[1].call.Outcome != insurance.OutcomeCovered || evs[1].call.Attempts != 1 {
			t.Errorf("after recovery: %+v", evs)
		}
	})
}
