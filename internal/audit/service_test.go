package audit

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/telemetry"
)

type memStore struct {
	mu     sync.Mutex
	events []Event
	fail   error
	pruned []time.Time
}

func (m *memStore) AppendAudit(_ context.Context, events ...Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.events = append(m.events, events...)
	return nil
}

func (m *memStore) AuditEvents(_ context.Context, f Filter) ([]Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Event
	for i := len(m.events) - 1; i >= 0 && len(out) < f.Limit; i-- {
		if f.Before == "" || m.events[i].ID < f.Before {
			out = append(out, m.events[i])
		}
	}
	return out, nil
}

func (m *memStore) PruneAudit(_ context.Context, before time.Time, limit int) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pruned = append(m.pruned, before)
	n := 0
	kept := m.events[:0]
	for _, e := range m.events {
		if e.At.Before(before) && n < limit {
			n++
			continue
		}
		kept = append(kept, e)
	}
	m.events = kept
	return n, nil
}

func TestRecordFillsAndCounts(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	store := &memStore{}
	reg := prometheus.NewRegistry()
	var logs strings.Builder
	svc, err := NewService(store, Options{Now: func() time.Time { return now }, Registerer: reg, Logger: newTextLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := WithOrigin(context.Background(), Origin{Address: "203.0.113.7", RequestID: "rid-9"})
	svc.Record(ctx, Event{Action: LoginFailed, Target: "usr_1", Details: map[string]string{"reason": "password"}})
	if len(store.events) != 1 {
		t.Fatalf("%d events stored", len(store.events))
	}
	e := store.events[0]
	if !strings.HasPrefix(e.ID, "aud_") || !e.At.Equal(now) || e.Address != "203.0.113.7" || e.RequestID != "rid-9" {
		t.Errorf("recorded %+v", e)
	}
	// An event built with New keeps what New put in it.
	built := New(ctx, now.Add(-time.Minute), UserRoleChanged, identity.Principal{UserID: "usr_admin", Role: identity.Admin}, "usr_2", nil)
	svc.Record(context.Background(), built)
	if got := store.events[1]; got.ID != built.ID || got.ActorID != "usr_admin" || got.ActorRole != identity.Admin || got.Address != "203.0.113.7" {
		t.Errorf("recorded %+v, built %+v", got, built)
	}
	// A failure to store is counted and logged, never returned.
	store.fail = errors.New("disk full")
	svc.Record(ctx, Event{Action: LoginSucceeded, ActorID: "usr_1", Target: "usr_1"})
	if n, _ := telemetry.Sum(reg, "yolda_audit_record_failures_total", nil); n != 1 {
		t.Errorf("failures counted %v, want 1", n)
	}
	if !strings.Contains(logs.String(), "disk full") || !strings.Contains(logs.String(), "login.succeeded") {
		t.Errorf("failure not logged with the event: %s", logs.String())
	}
	// An unknown action is refused (metric labels come from the closed set).
	store.fail = nil
	svc.Record(ctx, Event{Action: "made.up"})
	if len(store.events) != 2 {
		t.Errorf("unknown action stored")
	}
	if n, _ := telemetry.Sum(reg, "yolda_audit_events_total", map[string]string{"action": "login.failed"}); n != 1 {
		t.Errorf("login.failed counted %v", n)
	}
}

func TestListPagesAndPruneBatches(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	store := &memStore{}
	svc, err := NewService(store, Options{Now: func() time.Time { return now }, Retention: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 2500 {
		at := now.Add(-48 * time.Hour).Add(time.Duration(i) * time.Second)
		if i >= 2400 {
			at = now.Add(-time.Duration(2500-i) * time.Second)
		}
		store.events = append(store.events, New(ctx, at, LoginSucceeded, identity.Principal{UserID: "usr_1"}, "usr_1", nil))
	}
	p, err := svc.List(ctx, Filter{Limit: 10})
	if err != nil || len(p.Items) != 10 || p.NextCursor != p.Items[9].ID {
		t.Fatalf("first page: %d items, cursor %q, %v", len(p.Items), p.NextCursor, err)
	}
	n, err := svc.Prune(ctx)
	if err != nil || n != 2400 {
		t.Fatalf("pruned %d (%v), want 2400", n, err)
	}
	if len(store.pruned) != 3 { // 1000, 1000, 400
		t.Errorf("%d batches, want 3", len(store.pruned))
	}
	if !store.pruned[0].Equal(now.Add(-24 * time.Hour)) {
		t.Errorf("pruned before %v, want the retention's cut-off", store.pruned[0])
	}
	if len(store.events) != 100 {
		t.Errorf("%d events kept, want 100", len(store.events))
	}
}
