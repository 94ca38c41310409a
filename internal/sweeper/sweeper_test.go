package sweeper_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
	"github.com/yolda/yolda/internal/store/sqlite"
	"github.com/yolda/yolda/internal/sweeper"
	"github.com/yolda/yolda/internal/telemetry"
)

// fakeBroker holds the subjects it was told about; it can fail.
type fakeBroker struct {
	mu    sync.Mutex
	has   map[string]bool
	err   error
	asked int
}

func (b *fakeBroker) HasMessage(_ context.Context, subject string) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.asked++
	return b.has[subject], b.err
}

type unitFixture struct {
	store  *sqlite.Store
	svc    *intake.Service
	clock  *clock
	broker *fakeBroker
	owner  identity.Principal
}

func newUnit(t *testing.T) *unitFixture {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "y.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	accounts, _ := account.NewService(store, &account.Hasher{Memory: 64, Time: 1, Threads: 1})
	u, err := accounts.Add(ctx, account.NewUser{Username: "ayse", Password: "ayse-password", Role: identity.Customer})
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{now: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)}
	svc := intake.NewService(store, intake.Options{Now: c.Now, KnownInsurer: func(string) bool { return true }})
	t.Cleanup(svc.Close)
	return &unitFixture{store: store, svc: svc, clock: c, broker: &fakeBroker{has: map[string]bool{}},
		owner: identity.Principal{UserID: u.ID, Role: u.Role}}
}

func (f *unitFixture) create(t *testing.T) intake.Request {
	t.Helper()
	lat, lng := 41.0, 29.0
	sub := intake.Submission{ServiceType: intake.Lockout, Location: &intake.LocationInput{Lat: &lat, Lng: &lng},
		Vehicle: &intake.Vehicle{Plate: "34AB12", Type: "car"}, Policy: &intake.Policy{Insurer: "axa", PolicyNumber: "P-1"},
		Contact: &intake.Contact{Name: "Ayşe", Phone: "+905551112233"}}
	c, err := f.svc.Create(context.Background(), f.owner, sub, "")
	if err != nil {
		t.Fatal(err)
	}
	return c.Request
}

// publish plays the relay: every unsent row goes to the broker.
func (f *unitFixture) publish(t *testing.T) []outbox.Message {
	t.Helper()
	var out []outbox.Message
	if _, err := f.store.RelayOutbox(context.Background(), 1000, time.Minute, func(msgs []outbox.Message) []outbox.Publication {
		f.broker.mu.Lock()
		defer f.broker.mu.Unlock()
		pubs := make([]outbox.Publication, len(msgs))
		for i, m := range msgs {
			f.broker.has[m.Subject] = true
			pubs[i] = outbox.Publication{Stream: "X", StreamSeq: uint64(i + 1)}
		}
		out = append(out, msgs...)
		return pubs
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// lose makes the broker lose every job.
func (f *unitFixture) lose() {
	f.broker.mu.Lock()
	defer f.broker.mu.Unlock()
	f.broker.has = map[string]bool{}
}

func TestSweepCommitsAgainOnlyWhatTheBrokerLost(t *testing.T) {
	f := newUnit(t)
	ctx := context.Background()
	old := f.create(t)
	f.clock.Add(time.Hour)
	f.create(t) // fresh
	f.publish(t)
	reg := prometheus.NewRegistry()
	sw := sweeper.New(f.store, f.broker, f.svc.Jobs, sweeper.DefaultRules, sweeper.Options{Now: f.clock.Now}, nil, reg)

	// The broker still has the old request's jobs: a look, no re-commit.
	got, err := sw.SweepOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Nudged[intake.StatusDispatching] != 0 || got.Parked[intake.StatusDispatching] != 1 {
		t.Fatalf("jobs still in the broker: %+v, want one look and no nudge", got)
	}
	if p, _ := f.store.PendingOutbox(ctx, 100); len(p) != 0 {
		t.Fatalf("a look committed %d rows", len(p))
	}

	// The broker loses them: both jobs of the old request, once.
	f.lose()
	f.clock.Add(2 * time.Minute)
	got, err = sw.SweepOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Nudged[intake.StatusDispatching] != 1 {
		t.Fatalf("nudged %+v, want the one old dispatching request", got)
	}
	sent := f.publish(t)
	if len(sent) != 2 {
		t.Fatalf("nudge committed %d messages, want 2", len(sent))
	}
	subjects := map[string]bool{}
	for _, m := range sent {
		subjects[m.Subject] = true
		if !strings.Contains(string(m.Payload), old.ID) {
			t.Errorf("nudge message is not about the stale request: %s", m.Payload)
		}
	}
	if !subjects[outbox.InsuranceVerifySubject("axa", old.ID)] || !subjects[outbox.DispatchRequestSubject(old.ID)] {
		t.Errorf("nudge subjects: %v", subjects)
	}
	if again, _ := sw.SweepOnce(ctx); len(again.Nudged) != 0 || len(again.Parked) != 0 {
		t.Errorf("looked at again at once: %+v", again)
	}
	if v, _ := telemetry.Sum(reg, "yolda_sweeper_nudged_total", nil); v != 1 {
		t.Errorf("yolda_sweeper_nudged_total = %v, want 1 (looks are not nudges)", v)
	}
}

// A request whose jobs the broker keeps losing is committed again with a
// growing back-off, and flagged stuck after MaxNudges; a change of the
// request starts its wait afresh.
func TestBackoffThenStuck(t *testing.T) {
	f := newUnit(t)
	ctx := context.Background()
	r := f.create(t)
	f.publish(t)
	reg := prometheus.NewRegistry()
	rules := []sweeper.Rule{{Status: intake.StatusDispatching, After: time.Minute}}
	sw := sweeper.New(f.store, f.broker, f.svc.Jobs, rules, sweeper.Options{Now: f.clock.Now, MaxNudges: 3, MaxBackoff: 10 * time.Minute}, nil, reg)
	var nudgedAt []time.Duration
	start := f.clock.Now()
	for range 60 { // an hour, a sweep a minute, the broker losing everything
		f.clock.Add(time.Minute)
		f.lose()
		got, err := sw.SweepOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got.Nudged[intake.StatusDispatching] > 0 {
			nudgedAt = append(nudgedAt, f.clock.Now().Sub(start))
		}
		f.publish(t)
	}
	// Due once it has waited a minute (first seen at 2m), then 2, 4 and 8
	// minutes after each nudge, then every 10 (the cap).
	want := []time.Duration{2, 4, 8, 16, 26, 36, 46, 56}
	if len(nudgedAt) != len(want) {
		t.Fatalf("nudged at %v, want at %v minutes", nudgedAt, want)
	}
	for i, w := range want {
		if nudgedAt[i] != w*time.Minute {
			t.Errorf("nudge %d at %s, want %dm", i+1, nudgedAt[i], w)
		}
	}
	if v, _ := telemetry.Sum(reg, "yolda_sweeper_stuck_total", nil); v != 1 {
		t.Errorf("flagged stuck %v times, want once", v)
	}
	if v, _ := telemetry.Sum(reg, "yolda_requests_stuck", map[string]string{"status": "dispatching"}); v != 1 {
		t.Errorf("stuck gauge %v, want 1", v)
	}
	// An operator cancels it: no longer stuck.
	if _, err := f.svc.Cancel(ctx, identity.Principal{UserID: "op", Role: identity.Operator}, r.ID, "called the customer"); err != nil {
		t.Fatal(err)
	}
	if _, err := sw.SweepOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if v, _ := telemetry.Sum(reg, "yolda_requests_stuck", nil); v != 0 {
		t.Errorf("stuck gauge after the change: %v", v)
	}
}

// A broker that does not answer is not a broker that lost everything:
// nothing is committed again until it answers.
func TestBrokerDownCommitsNothing(t *testing.T) {
	f := newUnit(t)
	ctx := context.Background()
	f.create(t)
	f.publish(t)
	f.lose()
	f.broker.err = errors.New("no responders")
	sw := sweeper.New(f.store, f.broker, f.svc.Jobs, sweeper.DefaultRules, sweeper.Options{Now: f.clock.Now}, nil, nil)
	f.clock.Add(time.Hour)
	got, err := sw.SweepOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Nudged) != 0 || f.broker.asked == 0 {
		t.Errorf("broker down: %+v after %d questions", got, f.broker.asked)
	}
	if p, _ := f.store.PendingOutbox(ctx, 100); len(p) != 0 {
		t.Errorf("committed %d rows while the broker was down", len(p))
	}
	f.broker.err = nil
	if got, _ := sw.SweepOnce(ctx); got.Nudged[intake.StatusDispatching] != 1 {
		t.Errorf("once the broker answers: %+v", got)
	}
}
