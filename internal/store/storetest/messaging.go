package storetest

import (
	"context"
	"errors"

	"github.com/google/go-cmp/cmp"
	"sync"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/deadletter"
	"github.com/yolda/yolda/internal/id"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/notify"
	"github.com/yolda/yolda/internal/outbox"
)

// MessagingStore is what the messaging backbone needs of a store: the
// relay's view of the outbox, receipts, dead letters, notifications and
// the sweeper's nudge.
type MessagingStore interface {
	Store
	deadletter.Store
	notify.Store
	RelayOutbox(ctx context.Context, limit int, publish func([]outbox.Message) []bool) (int, error)
	OutboxSentSince(ctx context.Context, since time.Time, afterSeq int64, limit int) ([]outbox.Message, error)
	PruneOutbox(ctx context.Context, sentBefore time.Time, limit int) (int, error)
	OutboxBacklog(ctx context.Context) (int, time.Time, error)
	EnqueueOutbox(ctx context.Context, msgs []outbox.Message) error
	NudgeStale(ctx context.Context, status intake.Status, olderThan, now time.Time, limit int,
		jobs func(intake.Request) ([]outbox.Message, error)) ([]string, error)
	PendingInsurance(ctx context.Context) ([]intake.PendingChecks, error)
	PruneBookkeeping(ctx context.Context, receiptsBefore, keysBefore time.Time, limit int) (int, error)
}

// RunMessaging runs the messaging part of the suite.
func RunMessaging(t *testing.T, open func(t *testing.T) MessagingStore) {
	t.Run("Relay", func(t *testing.T) { testRelay(t, open(t)) })
	t.Run("RelayConcurrent", func(t *testing.T) { testRelayConcurrent(t, open(t)) })
	t.Run("Receipts", func(t *testing.T) { testReceipts(t, open(t)) })
	t.Run("DeadLetters", func(t *testing.T) { testDeadLetters(t, open(t)) })
	t.Run("Notifications", func(t *testing.T) { testNotifications(t, open(t)) })
	t.Run("NudgeStale", func(t *testing.T) { testNudge(t, open(t)) })
	t.Run("PendingInsurance", func(t *testing.T) { testPendingInsurance(t, open(t)) })
	t.Run("PruneBookkeeping", func(t *testing.T) { testPruneBookkeeping(t, open(t)) })
}

func testRelay(t *testing.T, s MessagingStore) {
	ctx := context.Background()
	owner := addUser(t, s, "ayse", identity.Customer)
	var cs []*intake.Creation
	for i := range 5 {
		cs = append(cs, creation(newRequest(owner.ID, time.Duration(i)*time.Second, "İstanbul", "anadolu", intake.Tow), "", ""))
	}
	mustCreate(t, s, cs...) // 10 outbox rows
	if n, oldest, err := s.OutboxBacklog(ctx); err != nil || n != 10 || !oldest.Equal(base) {
		t.Fatalf("backlog: %d %v %v, want 10 rows from %v", n, oldest, err, base)
	}
	before := time.Now().Add(-time.Second)
	// Publish refuses every third message: those stay unsent.
	var seen []outbox.Message
	n, err := s.RelayOutbox(ctx, 100, func(msgs []outbox.Message) []bool {
		seen = append(seen, msgs...)
		ok := make([]bool, len(msgs))
		for i := range msgs {
			ok[i] = i%3 != 2
		}
		return ok
	})
	if err != nil || n != 7 || len(seen) != 10 {
		t.Fatalf("relay: sent %d of %d seen (err %v), want 7 of 10", n, len(seen), err)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i].Seq <= seen[i-1].Seq {
			t.Fatalf("relay order: seq %d after %d", seen[i].Seq, seen[i-1].Seq)
		}
	}
	left := pending(t, s)
	if len(left) != 3 || left[0].ID != seen[2].ID {
		t.Fatalf("unsent after relay: %d, want the 3 refused", len(left))
	}
	if n, _, _ := s.OutboxBacklog(ctx); n != 3 {
		t.Errorf("backlog after relay: %d, want 3", n)
	}
	// Messages sent since before: the 7, in order, with SentAt set.
	sent, err := s.OutboxSentSince(ctx, before, 0, 100)
	if err != nil || len(sent) != 7 {
		t.Fatalf("sent since: %d %v, want 7", len(sent), err)
	}
	if sent[0].SentAt.IsZero() || sent[0].ID != seen[0].ID {
		t.Errorf("sent since: first %+v", sent[0])
	}
	page, _ := s.OutboxSentSince(ctx, before, sent[3].Seq, 100)
	if len(page) != 3 {
		t.Errorf("sent since after seq: %d, want 3", len(page))
	}
	if later, _ := s.OutboxSentSince(ctx, time.Now().Add(time.Hour), 0, 100); len(later) != 0 {
		t.Errorf("sent since the future: %d", len(later))
	}
	// Pruning removes sent rows only.
	pruned, err := s.PruneOutbox(ctx, time.Now().Add(time.Hour), 100)
	if err != nil || pruned != 7 {
		t.Errorf("prune: %d %v, want 7", pruned, err)
	}
	if len(pending(t, s)) != 3 {
		t.Error("prune removed unsent rows")
	}
	// Re-driven messages committed on their own reach the relay too.
	extra := outbox.Message{ID: id.New("msg", base), Subject: "jobs.test", Payload: []byte(`{}`), CreatedAt: base}
	if err := s.EnqueueOutbox(ctx, []outbox.Message{extra}); err != nil {
		t.Fatal(err)
	}
	if left := pending(t, s); len(left) != 4 || left[3].ID != extra.ID {
		t.Errorf("enqueued message not pending last")
	}
}

// testRelayConcurrent: relays racing over one outbox publish every row,
// and none is marked sent by two of them without being published.
func testRelayConcurrent(t *testing.T, s MessagingStore) {
	owner := addUser(t, s, "ayse", identity.Customer)
	var cs []*intake.Creation
	for i := range 100 {
		cs = append(cs, creation(newRequest(owner.ID, time.Duration(i)*time.Millisecond, "İstanbul", "anadolu", intake.Tow), "", ""))
	}
	mustCreate(t, s, cs...)
	published := RaceRelays(t, []MessagingStore{s, s, s, s}, 7)
	if len(published) != 200 {
		t.Errorf("published %d distinct rows, want 200", len(published))
	}
	if left := pending(t, s); len(left) != 0 {
		t.Errorf("%d rows left unsent", len(left))
	}
	dups := 0
	for _, n := range published {
		if n > 1 {
			dups++
		}
	}
	t.Logf("rows published more than once by racing relays: %d of 200 (broker dedup drops them)", dups)
}

// RaceRelays runs one relay loop per store at once until the outbox is
// empty and returns how often each message id was published. Give it
// the same store several times to race relays of one process, or stores
// with their own connections to race processes.
func RaceRelays(t *testing.T, relays []MessagingStore, limit int) map[string]int {
	t.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	published := map[string]int{}
	var wg sync.WaitGroup
	for _, s := range relays {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n, err := s.RelayOutbox(ctx, limit, func(msgs []outbox.Message) []bool {
					time.Sleep(time.Millisecond) // a broker round trip, so the relays overlap
					mu.Lock()
					defer mu.Unlock()
					ok := make([]bool, len(msgs))
					for i, m := range msgs {
						published[m.ID]++
						ok[i] = true
					}
					return ok
				})
				if err != nil {
					t.Errorf("relay: %v", err)
					return
				}
				if n == 0 {
					return
				}
			}
		}()
	}
	wg.Wait()
	return published
}

func testReceipts(t *testing.T, s MessagingStore) {
	ctx := context.Background()
	owner := addUser(t, s, "ayse", identity.Customer)
	r := newRequest(owner.ID, 0, "İstanbul", "anadolu", intake.Tow)
	mustCreate(t, s, creation(r, "", ""))
	receipt := outbox.Receipt{Consumer: "insurance", MessageID: "msg_1"}
	apply := func(cur *intake.Request) (intake.Change, error) {
		cur.Notes += "+"
		cur.Version++
		return intake.Change{Receipt: &receipt}, nil
	}
	if _, err := s.UpdateRequest(ctx, r.ID, apply); err != nil {
		t.Fatalf("first application: %v", err)
	}
	if _, err := s.UpdateRequest(ctx, r.ID, apply); !errors.Is(err, outbox.ErrAlreadyProcessed) {
		t.Fatalf("second application: err = %v, want ErrAlreadyProcessed", err)
	}
	got, _ := s.Request(ctx, r.ID)
	if got.Notes != r.Notes+"+" || got.Version != 2 {
		t.Errorf("after a redelivery: notes %q version %d (applied twice?)", got.Notes, got.Version)
	}
	// Another consumer's receipt for the same message is separate.
	other := outbox.Receipt{Consumer: "dispatch", MessageID: "msg_1"}
	if _, err := s.UpdateRequest(ctx, r.ID, func(cur *intake.Request) (intake.Change, error) {
		cur.Version++
		return intake.Change{Receipt: &other}, nil
	}); err != nil {
		t.Errorf("other consumer: %v", err)
	}
}

func testDeadLetters(t *testing.T, s MessagingStore) {
	ctx := context.Background()
	svc := deadletter.NewService(s, func() time.Time { return base })
	for i, msgID := range []string{"msg_a", "msg_b", "msg_a"} { // msg_a recorded twice: the hook is at least once
		if err := svc.Record(ctx, "notify", "EVENTS", "events.request.created", msgID, []byte(`{"id":"`+msgID+`"}`), errors.New("boom"), 5+i); err != nil {
			t.Fatalf("record: %v", err)
		}
	}
	letters, err := svc.List(ctx, "", 10)
	if err != nil || len(letters) != 2 {
		t.Fatalf("list: %d %v, want 2", len(letters), err)
	}
	if letters[0].ID < letters[1].ID {
		t.Error("not newest first")
	}
	var a deadletter.Letter
	for _, l := range letters {
		if l.MessageID == "msg_a" {
			a = l
		}
	}
	if a.Error != "boom" || a.Deliveries != 5 || string(a.Payload) != `{"id":"msg_a"}` || a.RedrivenAt != nil || a.Consumer != "notify" {
		t.Errorf("letter: %+v", a)
	}
	page, _ := svc.List(ctx, letters[0].ID, 10)
	if len(page) != 1 || page[0].ID != letters[1].ID {
		t.Errorf("second page: %+v", page)
	}
	before := len(pending(t, s))
	got, err := svc.Retry(ctx, a.ID)
	if err != nil || got.RedrivenAt == nil {
		t.Fatalf("retry: %v %+v", err, got)
	}
	msgs := pending(t, s)
	if len(msgs) != before+1 || msgs[len(msgs)-1].Subject != "events.request.created" || string(msgs[len(msgs)-1].Payload) != `{"id":"msg_a"}` {
		t.Errorf("retry did not enqueue the message: %+v", msgs)
	}
	if _, err := svc.Retry(ctx, "dlq_nope"); !errors.Is(err, deadletter.ErrNotFound) {
		t.Errorf("retry of unknown: %v", err)
	}
}

func testNotifications(t *testing.T, s MessagingStore) {
	ctx := context.Background()
	owner := addUser(t, s, "ayse", identity.Customer)
	r := newRequest(owner.ID, 0, "İstanbul", "anadolu", intake.Tow)
	mustCreate(t, s, creation(r, "", ""))
	n := notify.Notification{ID: id.New("ntf", base), RequestID: r.ID, RecipientID: owner.ID, Channel: "push",
		Template: "request.received", Body: "Aldık.", CreatedAt: base}
	receipt := outbox.Receipt{Consumer: notify.Consumer, MessageID: "msg_x"}
	if err := s.RecordNotifications(ctx, receipt, []notify.Notification{n}); err != nil {
		t.Fatal(err)
	}
	n2 := n
	n2.ID = id.New("ntf", base.Add(time.Second))
	if err := s.RecordNotifications(ctx, receipt, []notify.Notification{n2}); !errors.Is(err, outbox.ErrAlreadyProcessed) {
		t.Fatalf("redelivery: err = %v", err)
	}
	got, err := s.Notifications(ctx, r.ID)
	if err != nil || len(got) != 1 || got[0].ID != n.ID || got[0].Body != "Aldık." || !got[0].CreatedAt.Equal(base) {
		t.Errorf("notifications: %v %+v", err, got)
	}
}

func testNudge(t *testing.T, s MessagingStore) {
	ctx := context.Background()
	owner := addUser(t, s, "ayse", identity.Customer)
	old := newRequest(owner.ID, 0, "İstanbul", "anadolu", intake.Tow)                // updated at base
	fresh := newRequest(owner.ID, 10*time.Minute, "İstanbul", "anadolu", intake.Tow) // updated at base+10m
	other := newRequest(owner.ID, 0, "İstanbul", "anadolu", intake.Tow)
	other.Status = intake.StatusDispatching
	mustCreate(t, s, creation(old, "", ""), creation(fresh, "", ""), creation(other, "", ""))
	before := len(pending(t, s))
	jobs := func(r intake.Request) ([]outbox.Message, error) {
		m, err := outbox.New(outbox.SubjectInsuranceVerify, "insurance.verify", base, r.ID, outbox.SystemActor, map[string]string{})
		return []outbox.Message{m}, err
	}
	now := base.Add(5 * time.Minute)
	ids, err := s.NudgeStale(ctx, intake.StatusReceived, base.Add(time.Minute), now, 10, jobs)
	if err != nil || len(ids) != 1 || ids[0] != old.ID {
		t.Fatalf("nudge: %v %v, want only %s", ids, err, old.ID)
	}
	if n := len(pending(t, s)); n != before+1 {
		t.Errorf("nudge enqueued %d messages, want 1", n-before)
	}
	// Nudged at now: not again until the threshold passes from now.
	if ids, _ := s.NudgeStale(ctx, intake.StatusReceived, now.Add(-time.Second), now, 10, jobs); len(ids) != 0 {
		t.Errorf("nudged again too early: %v", ids)
	}
	if ids, _ := s.NudgeStale(ctx, intake.StatusReceived, now.Add(time.Second), now.Add(time.Minute), 10, jobs); len(ids) != 1 {
		t.Errorf("not nudged again after the threshold: %v", ids)
	}
	// A failing job builder commits nothing.
	boom := errors.New("boom")
	if _, err := s.NudgeStale(ctx, intake.StatusDispatching, base.Add(time.Hour), now, 10, func(intake.Request) ([]outbox.Message, error) {
		return nil, boom
	}); !errors.Is(err, boom) {
		t.Errorf("failing builder: %v", err)
	}
	if ids, _ := s.NudgeStale(ctx, intake.StatusDispatching, base.Add(time.Hour), now, 10, jobs); len(ids) != 1 || ids[0] != other.ID {
		t.Errorf("after a failed nudge the request must still be stale: %v", ids)
	}
}

func testPendingInsurance(t *testing.T, s MessagingStore) {
	ctx := context.Background()
	owner := addUser(t, s, "ayse", identity.Customer)
	a1 := newRequest(owner.ID, time.Minute, "İstanbul", "anadolu", intake.Tow)
	a2 := newRequest(owner.ID, 0, "İstanbul", "anadolu", intake.Tow)
	x := newRequest(owner.ID, time.Hour, "İstanbul", "axa", intake.Tow)
	done := newRequest(owner.ID, 0, "İstanbul", "allianz", intake.Tow)
	done.Insurance.Status = intake.InsuranceApproved
	mustCreate(t, s, creation(a1, "", ""), creation(a2, "", ""), creation(x, "", ""), creation(done, "", ""))
	got, err := s.PendingInsurance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []intake.PendingChecks{{Insurer: "anadolu", Count: 2, Oldest: base}, {Insurer: "axa", Count: 1, Oldest: base.Add(time.Hour)}}
	if diff := cmp.Diff(want, got, timeOpts); diff != "" {
		t.Errorf("pending (-want +got):\n%s", diff)
	}
}

func testPruneBookkeeping(t *testing.T, s MessagingStore) {
	ctx := context.Background()
	owner := addUser(t, s, "ayse", identity.Customer)
	old := newRequest(owner.ID, 0, "İstanbul", "anadolu", intake.Tow) // created at base
	fresh := newRequest(owner.ID, 2*time.Hour, "İstanbul", "anadolu", intake.Tow)
	mustCreate(t, s, creation(old, "old-key", "fp"), creation(fresh, "fresh-key", "fp"))
	if err := s.RecordNotifications(ctx, outbox.Receipt{Consumer: "c", MessageID: "m1"}, nil); err != nil {
		t.Fatal(err)
	}
	// Nothing is old enough yet.
	if n, err := s.PruneBookkeeping(ctx, time.Now().Add(-time.Hour), base.Add(-time.Hour), 100); err != nil || n != 0 {
		t.Fatalf("prune nothing: %d %v", n, err)
	}
	n, err := s.PruneBookkeeping(ctx, time.Now().Add(time.Hour), base.Add(time.Hour), 100)
	if err != nil || n != 2 {
		t.Fatalf("prune: %d %v, want the receipt and the old key", n, err)
	}
	// The receipt is gone: the same message would be applied again.
	if err := s.RecordNotifications(ctx, outbox.Receipt{Consumer: "c", MessageID: "m1"}, nil); err != nil {
		t.Errorf("receipt after pruning: %v", err)
	}
	// The old key is free again; the fresh one still replays.
	again := creation(newRequest(owner.ID, 3*time.Hour, "İstanbul", "anadolu", intake.Tow), "old-key", "fp")
	replay := creation(newRequest(owner.ID, 3*time.Hour, "İstanbul", "anadolu", intake.Tow), "fresh-key", "fp")
	mustCreate(t, s, again, replay)
	if again.ReplayOf != "" || replay.ReplayOf != fresh.ID {
		t.Errorf("after pruning: old key ReplayOf=%q, fresh key ReplayOf=%q (want %q)", again.ReplayOf, replay.ReplayOf, fresh.ID)
	}
}
