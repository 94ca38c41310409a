package storetest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/yolda/yolda/internal/deadletter"
	"github.com/yolda/yolda/internal/id"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/notify"
	"github.com/yolda/yolda/internal/outbox"
	"github.com/yolda/yolda/internal/sweeper"
)

// MessagingStore is what the messaging backbone needs of a store: the
// relay's view of the outbox, receipts, dead letters, notifications and
// the sweeper's nudge.
type MessagingStore interface {
	Store
	deadletter.Store
	notify.Store
	RelayOutbox(ctx context.Context, limit int, lease time.Duration, publish func([]outbox.Message) []outbox.Publication) (int, error)
	OutboxLastPublished(ctx context.Context, stream string, since time.Time) (outbox.Published, error)
	OutboxPublishedAfter(ctx context.Context, stream string, since time.Time, afterSeq uint64, limit int) ([]outbox.Published, error)
	PruneOutbox(ctx context.Context, before time.Time, limit int) (int, error)
	OutboxBacklog(ctx context.Context) (int, time.Time, error)
	EnqueueOutbox(ctx context.Context, msgs []outbox.Message) error
	sweeper.Store
	PendingInsurance(ctx context.Context) ([]intake.PendingChecks, error)
	PruneBookkeeping(ctx context.Context, receiptsBefore, keysBefore time.Time, limit int) (int, error)
}

// RunMessaging runs the messaging part of the suite.
func RunMessaging(t *testing.T, open func(t *testing.T) MessagingStore) {
	t.Run("Relay", func(t *testing.T) { testRelay(t, open(t)) })
	t.Run("RelayConcurrent", func(t *testing.T) { testRelayConcurrent(t, open(t)) })
	t.Run("RelayLease", func(t *testing.T) { testRelayLease(t, open(t)) })
	t.Run("Receipts", func(t *testing.T) { testReceipts(t, open(t)) })
	t.Run("DeadLetters", func(t *testing.T) { testDeadLetters(t, open(t)) })
	t.Run("Notifications", func(t *testing.T) { testNotifications(t, open(t)) })
	t.Run("Nudges", func(t *testing.T) { testNudges(t, open(t)) })
	t.Run("PendingInsurance", func(t *testing.T) { testPendingInsurance(t, open(t)) })
	t.Run("PruneBookkeeping", func(t *testing.T) { testPruneBookkeeping(t, open(t)) })
}

// broker is a fake broker for the relay tests: it confirms what accept
// says, numbering each stream's messages from 1 as JetStream does.
type broker struct {
	mu   sync.Mutex
	seqs map[string]uint64
}

func (b *broker) publish(msgs []outbox.Message, accept func(i int, m outbox.Message) bool, retry time.Duration) []outbox.Publication {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seqs == nil {
		b.seqs = map[string]uint64{}
	}
	out := make([]outbox.Publication, len(msgs))
	for i, m := range msgs {
		if !accept(i, m) {
			out[i].RetryAfter = retry
			continue
		}
		stream := "EVENTS"
		if strings.HasPrefix(m.Subject, "jobs.") {
			stream = "JOBS"
		}
		b.seqs[stream]++
		out[i] = outbox.Publication{Stream: stream, StreamSeq: b.seqs[stream]}
	}
	return out
}

func testRelay(t *testing.T, s MessagingStore) {
	ctx := context.Background()
	owner := addUser(t, s, "ayse", identity.Customer)
	var cs []*intake.Creation
	for i := range 5 {
		cs = append(cs, creation(newRequest(owner.ID, time.Duration(i)*time.Second, "İstanbul", "anadolu", intake.Tow), "", ""))
	}
	mustCreate(t, s, cs...) // 10 outbox rows: a job and an event each
	if n, oldest, err := s.OutboxBacklog(ctx); err != nil || n != 10 || !oldest.Equal(base) {
		t.Fatalf("backlog: %d %v %v, want 10 rows from %v", n, oldest, err, base)
	}
	before := time.Now().Add(-time.Second)
	var b broker
	// The broker refuses every third message: those stay unsent.
	var seen []outbox.Message
	n, err := s.RelayOutbox(ctx, 100, time.Minute, func(msgs []outbox.Message) []outbox.Publication {
		seen = append(seen, msgs...)
		return b.publish(msgs, func(i int, _ outbox.Message) bool { return i%3 != 2 }, 0)
	})
	if err != nil || n != 7 || len(seen) != 10 {
		t.Fatalf("relay: confirmed %d of %d seen (err %v), want 7 of 10", n, len(seen), err)
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
	// The record of what the broker confirmed: per stream, in stream order.
	events, err := s.OutboxPublishedAfter(ctx, "EVENTS", before, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	jobs, _ := s.OutboxPublishedAfter(ctx, "JOBS", before, 0, 100)
	if len(events)+len(jobs) != 7 || len(events) == 0 || len(jobs) == 0 {
		t.Fatalf("published: %d events and %d jobs, want 7 in all", len(events), len(jobs))
	}
	for i, p := range events {
		if p.StreamSeq != uint64(i+1) || p.Stream != "EVENTS" || !strings.HasPrefix(p.Subject, "events.") || len(p.Payload) == 0 {
			t.Errorf("published event %d: %+v", i, p)
		}
	}
	top, err := s.OutboxLastPublished(ctx, "EVENTS", before)
	if err != nil || top.StreamSeq != uint64(len(events)) || top.ID != events[len(events)-1].ID {
		t.Errorf("last published event: %+v %v, want seq %d", top, err, len(events))
	}
	if page, _ := s.OutboxPublishedAfter(ctx, "EVENTS", before, 1, 100); len(page) != len(events)-1 || page[0].StreamSeq != 2 {
		t.Errorf("published after seq 1: %d", len(page))
	}
	if later, _ := s.OutboxPublishedAfter(ctx, "EVENTS", time.Now().Add(time.Hour), 0, 100); len(later) != 0 {
		t.Errorf("published since the future: %d", len(later))
	}
	// The refused rows go out in the next round.
	n, err = s.RelayOutbox(ctx, 100, time.Minute, func(msgs []outbox.Message) []outbox.Publication {
		return b.publish(msgs, func(int, outbox.Message) bool { return true }, 0)
	})
	if err != nil || n != 3 || len(pending(t, s)) != 0 {
		t.Fatalf("second round: %d %v, %d left", n, err, len(pending(t, s)))
	}
	// Pruning forgets the window's records, never an unsent row.
	extra := outbox.Message{ID: id.New("msg", base), Subject: "jobs.test", Payload: []byte(`{}`), CreatedAt: base}
	if err := s.EnqueueOutbox(ctx, []outbox.Message{extra}); err != nil {
		t.Fatal(err)
	}
	if pruned, err := s.PruneOutbox(ctx, time.Now().Add(time.Hour), 100); err != nil || pruned == 0 {
		t.Errorf("prune: %d %v", pruned, err)
	}
	if top, _ := s.OutboxLastPublished(ctx, "EVENTS", before); top.StreamSeq != 0 {
		t.Errorf("record left after pruning: %+v", top)
	}
	if left := pending(t, s); len(left) != 1 || left[0].ID != extra.ID {
		t.Errorf("enqueued message not pending after pruning: %+v", left)
	}
}

// testRelayLease: rows a relay holds are left alone by the others until
// its lease ends: rows refused at a stream limit are held back for their
// RetryAfter while the rows behind them go out, and the rows of a relay
// that stalled (or died) after claiming them go to another relay once its
// lease is over. A stalled relay that wakes up and records what it
// published does no harm.
func testRelayLease(t *testing.T, s MessagingStore) {
	ctx := context.Background()
	owner := addUser(t, s, "ayse", identity.Customer)
	mustCreate(t, s, creation(newRequest(owner.ID, 0, "İstanbul", "anadolu", intake.Tow), "", ""))
	var b broker
	all := func(int, outbox.Message) bool { return true }
	jobsRefused := func(_ int, m outbox.Message) bool { return !strings.HasPrefix(m.Subject, "jobs.") }
	// The job is refused and held for an hour; the event goes out.
	if n, err := s.RelayOutbox(ctx, 10, time.Minute, func(msgs []outbox.Message) []outbox.Publication {
		return b.publish(msgs, jobsRefused, time.Hour)
	}); err != nil || n != 1 {
		t.Fatalf("first round: %d %v", n, err)
	}
	// Rows committed after it are not held up behind it.
	mustCreate(t, s, creation(newRequest(owner.ID, time.Second, "İstanbul", "anadolu", intake.Tow), "", ""))
	var second []string
	if n, err := s.RelayOutbox(ctx, 10, time.Minute, func(msgs []outbox.Message) []outbox.Publication {
		for _, m := range msgs {
			second = append(second, m.Subject)
		}
		return b.publish(msgs, all, 0)
	}); err != nil || n != 2 || len(second) != 2 {
		t.Fatalf("second round: confirmed %d of %v (err %v), want the 2 new rows and not the held job", n, second, err)
	}
	if left := pending(t, s); len(left) != 1 || !strings.HasPrefix(left[0].Subject, "jobs.") {
		t.Fatalf("pending: %+v, want the held job", left)
	}

	// A relay claims the next rows and stalls before publishing.
	mustCreate(t, s, creation(newRequest(owner.ID, 2*time.Second, "İstanbul", "anadolu", intake.Tow), "", ""))
	stalled, resume := make(chan []outbox.Message, 1), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := s.RelayOutbox(ctx, 10, 300*time.Millisecond, func(msgs []outbox.Message) []outbox.Publication {
			stalled <- msgs
			<-resume
			return b.publish(msgs, all, 0)
		})
		done <- err
	}()
	held := <-stalled
	if len(held) != 2 {
		t.Fatalf("stalled relay claimed %d rows, want the 2 new ones", len(held))
	}
	// While its lease lasts, another relay finds nothing to take.
	if n, err := s.RelayOutbox(ctx, 10, time.Minute, func(msgs []outbox.Message) []outbox.Publication {
		t.Errorf("rows of a live lease handed out again: %d", len(msgs))
		return b.publish(msgs, all, 0)
	}); err != nil || n != 0 {
		t.Errorf("round during the lease: %d %v", n, err)
	}
	// Once it is over, another relay takes them.
	var retaken []string
	deadline := time.Now().Add(10 * time.Second)
	for len(retaken) == 0 && time.Now().Before(deadline) {
		if _, err := s.RelayOutbox(ctx, 10, time.Minute, func(msgs []outbox.Message) []outbox.Publication {
			for _, m := range msgs {
				retaken = append(retaken, m.ID)
			}
			return b.publish(msgs, all, 0)
		}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(retaken) != 2 || retaken[0] != held[0].ID || retaken[1] != held[1].ID {
		t.Fatalf("after the lease, another relay took %v, want %s and %s", retaken, held[0].ID, held[1].ID)
	}
	close(resume)
	if err := <-done; err != nil {
		t.Errorf("the stalled relay's late record: %v", err)
	}
	if left := pending(t, s); len(left) != 1 {
		t.Errorf("pending at the end: %d, want the held job", len(left))
	}
}

// testRelayConcurrent: relays racing over one outbox publish every row
// once: each takes rows no other holds.
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
	for id, n := range published {
		if n > 1 {
			t.Errorf("%s published %d times by racing relays", id, n)
		}
	}
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
	var b broker
	var wg sync.WaitGroup
	for _, s := range relays {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n, err := s.RelayOutbox(ctx, limit, time.Minute, func(msgs []outbox.Message) []outbox.Publication {
					time.Sleep(time.Millisecond) // a broker round trip, so the relays overlap
					mu.Lock()
					for _, m := range msgs {
						published[m.ID]++
					}
					mu.Unlock()
					return b.publish(msgs, func(int, outbox.Message) bool { return true }, 0)
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
	if stored, err := s.RecordNotificationBatch(ctx, []notify.Record{{Receipt: receipt, Notifications: []notify.Notification{n}}}); err != nil || !stored[0] {
		t.Fatal(stored, err)
	}
	n2 := n
	n2.ID = id.New("ntf", base.Add(time.Second))
	if stored, err := s.RecordNotificationBatch(ctx, []notify.Record{{Receipt: receipt, Notifications: []notify.Notification{n2}}}); err != nil || stored[0] {
		t.Fatalf("redelivery: stored %v, err = %v", stored, err)
	}
	got, err := s.Notifications(ctx, r.ID)
	if err != nil || len(got) != 1 || got[0].ID != n.ID || got[0].Body != "Aldık." || !got[0].CreatedAt.Equal(base) {
		t.Errorf("notifications: %v %+v", err, got)
	}
}

// drainOutbox has every unsent row confirmed, as a relay would.
func drainOutbox(t *testing.T, s MessagingStore) {
	t.Helper()
	var b broker
	for {
		n, err := s.RelayOutbox(context.Background(), 1000, time.Minute, func(msgs []outbox.Message) []outbox.Publication {
			return b.publish(msgs, func(int, outbox.Message) bool { return true }, 0)
		})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

func dueIDs(t *testing.T, s MessagingStore, status intake.Status, olderThan, now time.Time) []sweeper.Due {
	t.Helper()
	due, err := s.DueRequests(context.Background(), status, olderThan, now, 10)
	if err != nil {
		t.Fatalf("DueRequests: %v", err)
	}
	return due
}

func testNudges(t *testing.T, s MessagingStore) {
	ctx := context.Background()
	owner := addUser(t, s, "ayse", identity.Customer)
	old := newRequest(owner.ID, 0, "İstanbul", "anadolu", intake.Tow)                // updated at base
	fresh := newRequest(owner.ID, 10*time.Minute, "İstanbul", "anadolu", intake.Tow) // updated at base+10m
	other := newRequest(owner.ID, 0, "İstanbul", "anadolu", intake.Tow)
	other.Status = intake.StatusDispatching
	mustCreate(t, s, creation(old, "", ""), creation(fresh, "", ""), creation(other, "", ""))

	// While a request's own rows have not left the outbox, it is not due:
	// committing its jobs again would only add to the backlog.
	now := base.Add(5 * time.Minute)
	if due := dueIDs(t, s, intake.StatusReceived, base.Add(time.Minute), now); len(due) != 0 {
		t.Errorf("due with its jobs still in the outbox: %d", len(due))
	}
	drainOutbox(t, s)
	due := dueIDs(t, s, intake.StatusReceived, base.Add(time.Minute), now)
	if len(due) != 1 || due[0].Request.ID != old.ID || due[0].Nudges != 0 || due[0].Next != nil || due[0].Stuck ||
		due[0].Request.Version != 1 || len(due[0].Request.Timeline) != 1 {
		t.Fatalf("due: %+v, want only %s, not yet nudged", due, old.ID)
	}
	job, _ := outbox.New("jobs.test."+old.ID, "test.job", now, old.ID, outbox.SystemActor, map[string]string{})
	decide := func(d sweeper.Due, jobs []outbox.Message, next time.Time, stuck bool) sweeper.Decision {
		return sweeper.Decision{RequestID: d.Request.ID, Version: d.Request.Version, Nudges: d.Nudges, ReadNext: d.Next,
			Jobs: jobs, Next: next, Stuck: stuck}
	}
	first := decide(due[0], []outbox.Message{job}, now.Add(2*time.Minute), false)
	if ids, err := s.RecordNudges(ctx, now, []sweeper.Decision{first}); err != nil || len(ids) != 1 || ids[0] != old.ID {
		t.Fatalf("record: %v %v", ids, err)
	}
	if p := pending(t, s); len(p) != 1 || p[0].ID != job.ID {
		t.Fatalf("outbox after a nudge: %+v, want the job", p)
	}
	// The same decision again (a second sweeper that read the same state)
	// is not recorded, and commits nothing.
	if ids, err := s.RecordNudges(ctx, now, []sweeper.Decision{first}); err != nil || len(ids) != 0 {
		t.Errorf("a decision on a state already decided: %v %v", ids, err)
	}
	if n := len(pending(t, s)); n != 1 {
		t.Errorf("a refused decision left %d outbox rows", n-1)
	}
	drainOutbox(t, s)
	// Not due again before its next look, due at it, with its count.
	if due := dueIDs(t, s, intake.StatusReceived, base.Add(time.Minute), now.Add(time.Minute)); len(due) != 0 {
		t.Errorf("due before its next look: %+v", due)
	}
	due = dueIDs(t, s, intake.StatusReceived, base.Add(time.Minute), now.Add(2*time.Minute))
	if len(due) != 1 || due[0].Nudges != 1 || due[0].Next == nil || !due[0].Next.Equal(now.Add(2*time.Minute)) {
		t.Fatalf("due at its next look: %+v", due)
	}
	// A look that finds the job in the broker: rescheduled, not counted.
	later := now.Add(2 * time.Minute)
	if ids, _ := s.RecordNudges(ctx, later, []sweeper.Decision{decide(due[0], nil, later.Add(2*time.Minute), false)}); len(ids) != 1 {
		t.Fatalf("a look: %v", ids)
	}
	due = dueIDs(t, s, intake.StatusReceived, base.Add(time.Minute), later.Add(2*time.Minute))
	if len(due) != 1 || due[0].Nudges != 1 || len(pending(t, s)) != 0 {
		t.Fatalf("after a look: %+v", due)
	}
	// Flagged stuck: counted per status until the request changes.
	if ids, _ := s.RecordNudges(ctx, later, []sweeper.Decision{decide(due[0], []outbox.Message{job}, later.Add(time.Hour), true)}); len(ids) != 1 {
		t.Fatalf("flag stuck: %v", ids)
	}
	if stuck, err := s.StuckRequests(ctx); err != nil || stuck[intake.StatusReceived] != 1 || len(stuck) != 1 {
		t.Errorf("stuck: %v %v", stuck, err)
	}
	// A decision about a request that changed since it was read is not
	// recorded; the change ends the wait: count, schedule and flag reset.
	drainOutbox(t, s)
	due = dueIDs(t, s, intake.StatusReceived, base.Add(time.Minute), later.Add(2*time.Hour))
	if len(due) != 1 {
		t.Fatalf("due: %+v", due)
	}
	if _, err := s.UpdateRequest(ctx, old.ID, func(r *intake.Request) (intake.Change, error) {
		r.Advance(later)
		return intake.Change{}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.RecordNudges(ctx, later, []sweeper.Decision{decide(due[0], []outbox.Message{job}, later.Add(time.Hour), false)}); len(ids) != 0 {
		t.Errorf("a decision about a changed request was recorded: %v", ids)
	}
	if stuck, _ := s.StuckRequests(ctx); len(stuck) != 0 {
		t.Errorf("stuck after a change: %v", stuck)
	}
	due = dueIDs(t, s, intake.StatusReceived, later.Add(time.Minute), later.Add(time.Minute))
	if len(due) != 1 || due[0].Nudges != 0 || due[0].Next != nil || due[0].Stuck || due[0].Request.Version != 2 {
		t.Errorf("after a change: %+v, want a fresh wait", due)
	}
	// Other statuses are separate.
	if due := dueIDs(t, s, intake.StatusDispatching, base.Add(time.Hour), base.Add(time.Hour)); len(due) != 1 || due[0].Request.ID != other.ID {
		t.Errorf("dispatching due: %+v", due)
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
	// A check that can no longer settle waits for nobody: a cancelled
	// request's, however old.
	cancelled := newRequest(owner.ID, -time.Hour, "İstanbul", "anadolu", intake.Tow)
	cancelled.Status = intake.StatusCancelled
	mustCreate(t, s, creation(a1, "", ""), creation(a2, "", ""), creation(x, "", ""), creation(done, "", ""), creation(cancelled, "", ""))
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
	if _, err := s.RecordNotificationBatch(ctx, []notify.Record{{Receipt: outbox.Receipt{Consumer: "c", MessageID: "m1"}}}); err != nil {
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
	if stored, err := s.RecordNotificationBatch(ctx, []notify.Record{{Receipt: outbox.Receipt{Consumer: "c", MessageID: "m1"}}}); err != nil || !stored[0] {
		t.Errorf("receipt after pruning: stored %v, %v", stored, err)
	}
	// The old key is free again; the fresh one still replays.
	again := creation(newRequest(owner.ID, 3*time.Hour, "İstanbul", "anadolu", intake.Tow), "old-key", "fp")
	replay := creation(newRequest(owner.ID, 3*time.Hour, "İstanbul", "anadolu", intake.Tow), "fresh-key", "fp")
	mustCreate(t, s, again, replay)
	if again.ReplayOf != "" || replay.ReplayOf != fresh.ID {
		t.Errorf("after pruning: old key ReplayOf=%q, fresh key ReplayOf=%q (want %q)", again.ReplayOf, replay.ReplayOf, fresh.ID)
	}
}
