package notify

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
)

type memStore struct {
	receipts map[outbox.Receipt]bool
	notes    []Notification
}

func (m *memStore) RecordNotificationBatch(_ context.Context, rs []Record) ([]bool, error) {
	stored := make([]bool, len(rs))
	for i, r := range rs {
		if !m.receipts[r.Receipt] {
			m.receipts[r.Receipt] = true
			m.notes = append(m.notes, r.Notifications...)
			stored[i] = true
		}
	}
	return stored, nil
}

func (m *memStore) Notifications(context.Context, string) ([]Notification, error) {
	return m.notes, nil
}

func event(t *testing.T, typ string, data any) []byte {
	t.Helper()
	m, err := outbox.New(outbox.EventSubject(typ), typ, time.Now(), "req_1", outbox.Actor{ID: "usr_op"}, data)
	if err != nil {
		t.Fatal(err)
	}
	return m.Payload
}

func TestHandle(t *testing.T) {
	store := &memStore{receipts: map[outbox.Receipt]bool{}}
	w := NewWorker(store, nil)
	ctx := context.Background()
	created := event(t, outbox.EventRequestCreated, intake.CreatedEvent{Request: intake.Request{ServiceType: intake.Tow}, OwnerID: "usr_ayse"})
	assigned := event(t, outbox.EventRequestStatusChanged, intake.StatusChange{From: intake.StatusDispatching, To: intake.StatusAssigned, OwnerID: "usr_ayse"})
	silent := event(t, outbox.EventRequestStatusChanged, intake.StatusChange{From: intake.StatusReceived, To: intake.StatusDispatching, OwnerID: "usr_ayse"})
	for _, p := range [][]byte{created, assigned, silent, created} { // created twice: a redelivery
		if err := w.Handle(ctx, p); err != nil {
			t.Fatalf("Handle: %v", err)
		}
	}
	if len(store.notes) != 2 {
		t.Fatalf("notifications: %+v", store.notes)
	}
	// The customer is notified even when an operator made the change.
	if store.notes[0].RecipientID != "usr_ayse" || store.notes[0].Template != "request.received" || store.notes[1].Template != "request.assigned" {
		t.Errorf("notifications: %+v", store.notes)
	}
	for _, bad := range [][]byte{[]byte("not json"), []byte(`{"id":"","type":"request.created"}`),
		event(t, outbox.EventRequestCreated, intake.CreatedEvent{})} {
		if err := w.Handle(ctx, bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("Handle(%s): err = %v, want ErrMalformed", bad, err)
		}
	}
}

// A batch of events is one call to the store; an event delivered twice in
// it notifies once; one that cannot be read fails alone.
func TestHandleBatch(t *testing.T) {
	store := &countingStore{memStore: memStore{receipts: map[outbox.Receipt]bool{}}}
	w := NewWorker(store, nil)
	created := event(t, outbox.EventRequestCreated, intake.CreatedEvent{Request: intake.Request{ServiceType: intake.Winch}, OwnerID: "usr_ayse"})
	cancelled := event(t, outbox.EventRequestStatusChanged, intake.StatusChange{To: intake.StatusCancelled, OwnerID: "usr_ayse"})
	newer := []byte(`{"id":"msg_2","type":"request.created","version":2,"request_id":"req_1","data":{}}`)
	results, err := w.HandleBatch(context.Background(), [][]byte{created, []byte("{"), cancelled, created, newer})
	if err != nil {
		t.Fatal(err)
	}
	if store.calls != 1 {
		t.Errorf("%d store calls for one batch", store.calls)
	}
	for i, want := range []error{nil, ErrMalformed, nil, nil, outbox.ErrUnknownVersion} {
		if !errors.Is(results[i], want) || (want == nil && results[i] != nil) {
			t.Errorf("result %d = %v, want %v", i, results[i], want)
		}
	}
	if len(store.notes) != 2 || store.notes[0].Template != "request.received" || store.notes[1].Template != "request.cancelled" {
		t.Errorf("notifications %+v", store.notes)
	}
	// A store failure is the batch's: nothing is reported applied.
	store.fail = errors.New("disk full")
	if results, err := w.HandleBatch(context.Background(), [][]byte{cancelled}); err == nil || results != nil {
		t.Errorf("store failure: %v, %v", results, err)
	}
}

type countingStore struct {
	memStore
	calls int
	fail  error
}

func (c *countingStore) RecordNotificationBatch(ctx context.Context, rs []Record) ([]bool, error) {
	c.calls++
	if c.fail != nil {
		return nil, c.fail
	}
	return c.memStore.RecordNotificationBatch(ctx, rs)
}
