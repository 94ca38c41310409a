package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/id"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/notify"
	"github.com/yolda/yolda/internal/outbox"
)

// RunBatch runs the part of the suite for consumers' batched writes:
// many messages' effects in one transaction, each with its receipt.
func RunBatch(t *testing.T, open func(t *testing.T) MessagingStore) {
	t.Run("NotificationBatch", func(t *testing.T) { testNotificationBatch(t, open(t)) })
	t.Run("NotificationBatchIsAtomic", func(t *testing.T) { testNotificationBatchAtomic(t, open(t)) })
	t.Run("UpdateBatch", func(t *testing.T) { testUpdateBatch(t, open(t)) })
	t.Run("UpdateBatchIsAtomic", func(t *testing.T) { testUpdateBatchAtomic(t, open(t)) })
	t.Run("UpdateBatchConcurrent", func(t *testing.T) { testUpdateBatchConcurrent(t, open(t)) })
}

func note(r intake.Request, body string) notify.Notification {
	at := base.Add(time.Minute)
	return notify.Notification{ID: id.New("ntf", at), RequestID: r.ID, RecipientID: r.OwnerID, Channel: "push",
		Template: "request.received", Body: body, CreatedAt: at}
}

func notifyReceipt(msg string) outbox.Receipt {
	return outbox.Receipt{Consumer: notify.Consumer, MessageID: msg}
}

func bodies(t *testing.T, s MessagingStore, r intake.Request) []string {
	t.Helper()
	ns, err := s.Notifications(context.Background(), r.ID)
	if err != nil {
		t.Fatalf("Notifications: %v", err)
	}
	var out []string
	for _, n := range ns {
		out = append(out, n.Body)
	}
	slices.Sort(out) // notifications made at one instant have no order
	return out
}

func testNotificationBatch(t *testing.T, s MessagingStore) {
	ctx := context.Background()
	owner := addUser(t, s, "ayse", identity.Customer)
	r1 := newRequest(owner.ID, 0, "İstanbul", "anadolu", intake.Tow)
	r2 := newRequest(owner.ID, time.Second, "İstanbul", "anadolu", intake.Tow)
	mustCreate(t, s, creation(r1, "", ""), creation(r2, "", ""))

	stored, err := s.RecordNotificationBatch(ctx, []notify.Record{
		{Receipt: notifyReceipt("msg_a"), Notifications: []notify.Notification{note(r1, "a")}},
		{Receipt: notifyReceipt("msg_b"), Notifications: []notify.Notification{note(r2, "b1"), note(r2, "b2")}},
		{Receipt: notifyReceipt("msg_a"), Notifications: []notify.Notification{note(r1, "a again")}}, // delivered twice in one batch
		{Receipt: notifyReceipt("msg_c")}, // handled, nothing to tell
	})
	if err != nil {
		t.Fatalf("first batch: %v", err)
	}
	if want := []bool{true, true, false, true}; fmt.Sprint(stored) != fmt.Sprint(want) {
		t.Errorf("first batch stored %v, want %v", stored, want)
	}
	// A later batch with messages already handled stores only the new one.
	stored, err = s.RecordNotificationBatch(ctx, []notify.Record{
		{Receipt: notifyReceipt("msg_b"), Notifications: []notify.Notification{note(r2, "b redelivered")}},
		{Receipt: notifyReceipt("msg_c"), Notifications: []notify.Notification{note(r2, "c redelivered")}},
		{Receipt: notifyReceipt("msg_d"), Notifications: []notify.Notification{note(r1, "d")}},
	})
	if err != nil {
		t.Fatalf("second batch: %v", err)
	}
	if want := []bool{false, false, true}; fmt.Sprint(stored) != fmt.Sprint(want) {
		t.Errorf("second batch stored %v, want %v", stored, want)
	}
	if got := strings.Join(bodies(t, s, r1), ","); got != "a,d" {
		t.Errorf("r1 notifications %q, want a,d", got)
	}
	if got := strings.Join(bodies(t, s, r2), ","); got != "b1,b2" {
		t.Errorf("r2 notifications %q, want b1,b2", got)
	}
}

// A record that the database refuses (its request does not exist) fails
// the whole batch: nothing of it is committed, so each record can be tried
// alone.
func testNotificationBatchAtomic(t *testing.T, s MessagingStore) {
	ctx := context.Background()
	owner := addUser(t, s, "ayse", identity.Customer)
	r := newRequest(owner.ID, 0, "İstanbul", "anadolu", intake.Tow)
	mustCreate(t, s, creation(r, "", ""))
	ghost := newRequest(owner.ID, time.Second, "İstanbul", "anadolu", intake.Tow) // never created
	if _, err := s.RecordNotificationBatch(ctx, []notify.Record{
		{Receipt: notifyReceipt("msg_good"), Notifications: []notify.Notification{note(r, "good")}},
		{Receipt: notifyReceipt("msg_poison"), Notifications: []notify.Notification{note(ghost, "poison")}},
	}); !errors.Is(err, intake.ErrRowRejected) {
		t.Fatalf("a notification of a missing request: err = %v, want ErrRowRejected", err)
	}
	if got := bodies(t, s, r); len(got) != 0 {
		t.Fatalf("a failed batch left notifications: %v", got)
	}
	// Nor its receipts: alone, the good record is stored.
	stored, err := s.RecordNotificationBatch(ctx, []notify.Record{
		{Receipt: notifyReceipt("msg_good"), Notifications: []notify.Notification{note(r, "good")}},
	})
	if err != nil || len(stored) != 1 || !stored[0] {
		t.Fatalf("the good record alone: %v %v", stored, err)
	}
	if got := strings.Join(bodies(t, s, r), ","); got != "good" {
		t.Errorf("notifications %q, want good", got)
	}
}

func appendNote(s string) func(*intake.Request) (intake.Change, error) {
	return func(r *intake.Request) (intake.Change, error) {
		r.Advance(base.Add(time.Hour))
		r.Notes += s
		return intake.Change{}, nil
	}
}

func testUpdateBatch(t *testing.T, s MessagingStore) {
	ctx := context.Background()
	owner := addUser(t, s, "ayse", identity.Customer)
	r1 := newRequest(owner.ID, 0, "İstanbul", "anadolu", intake.Tow)
	r2 := newRequest(owner.ID, time.Second, "İstanbul", "anadolu", intake.Tow)
	r3 := newRequest(owner.ID, 2*time.Second, "İstanbul", "anadolu", intake.Tow)
	for _, r := range []*intake.Request{&r1, &r2, &r3} {
		r.Notes = ""
	}
	mustCreate(t, s, creation(r1, "", ""), creation(r2, "", ""), creation(r3, "", ""))
	before := len(pending(t, s))

	rc := func(msg string) *outbox.Receipt {
		return &outbox.Receipt{Consumer: "insurance-anadolu", MessageID: msg}
	}
	at := base.Add(time.Minute)
	ev := func(r intake.Request, n int) outbox.Message {
		m, _ := outbox.New(outbox.EventSubject(outbox.EventRequestStatusChanged), outbox.EventRequestStatusChanged, at, r.ID,
			outbox.SystemActor, map[string]int{"n": n})
		return m
	}
	ev1, ev3, ev7 := ev(r1, 1), ev(r1, 3), ev(r2, 7)
	boom := errors.New("boom")
	var sawR1, sawR2 string
	batch := []*intake.Update{
		{RequestID: r1.ID, Receipt: rc("msg_1"), Apply: func(r *intake.Request) (intake.Change, error) {
			r.Advance(at)
			r.Notes += "1"
			r.Status = intake.StatusDispatching
			return intake.Change{Timeline: &intake.TimelineEntry{Status: intake.StatusDispatching, At: at, ActorID: "system"},
				Outbox: []outbox.Message{ev1}}, nil
		}},
		{RequestID: r2.ID, Receipt: rc("msg_2"), Apply: func(r *intake.Request) (intake.Change, error) {
			r.Advance(at)
			r.Notes += "2"
			r.Insurance.Flags = append(r.Insurance.Flags, "left behind?")
			return intake.Change{}, boom
		}},
		{RequestID: r1.ID, Receipt: rc("msg_3"), Apply: func(r *intake.Request) (intake.Change, error) {
			sawR1 = r.Notes
			r.Advance(at)
			r.Notes += "3"
			r.Status = intake.StatusAssigned
			return intake.Change{Timeline: &intake.TimelineEntry{Status: intake.StatusAssigned, At: at, ActorID: "system"},
				Outbox: []outbox.Message{ev3}}, nil
		}},
		{RequestID: id.New("req", time.Now()), Apply: appendNote("ghost")},
		{RequestID: r3.ID, Receipt: rc("msg_1"), Apply: appendNote("again")}, // the same message, later in the batch
		{RequestID: r2.ID, Receipt: rc("msg_7"), Apply: func(r *intake.Request) (intake.Change, error) {
			sawR2 = r.Notes + fmt.Sprint(r.Version, r.Insurance.Flags)
			r.Advance(at)
			r.Notes += "7"
			return intake.Change{Outbox: []outbox.Message{ev7}}, nil
		}},
	}
	if err := s.UpdateRequests(ctx, batch); err != nil {
		t.Fatalf("UpdateRequests: %v", err)
	}
	for i, want := range []error{nil, boom, nil, intake.ErrNotFound, outbox.ErrAlreadyProcessed, nil} {
		if got := batch[i].Err; !errors.Is(got, want) || (want == nil && got != nil) {
			t.Errorf("update %d: Err = %v, want %v", i, got, want)
		}
	}
	if sawR1 != "1" {
		t.Errorf("the second update of r1 saw notes %q, want the first's %q", sawR1, "1")
	}
	if want := fmt.Sprint(1, r2.Insurance.Flags); sawR2 != want {
		t.Errorf("an update after a failed one saw %q, want %q: the failure left something behind", sawR2, want)
	}

	got1, _ := s.Request(ctx, r1.ID)
	got2, _ := s.Request(ctx, r2.ID)
	got3, _ := s.Request(ctx, r3.ID)
	if got1.Notes != "13" || got1.Status != intake.StatusAssigned || got1.Version != 3 || len(got1.Timeline) != 3 ||
		got1.Timeline[1].Status != intake.StatusDispatching || got1.Timeline[2].Status != intake.StatusAssigned {
		t.Errorf("r1 after the batch: notes %q status %s version %d timeline %+v", got1.Notes, got1.Status, got1.Version, got1.Timeline)
	}
	if got2.Notes != "7" || got2.Version != 2 {
		t.Errorf("r2 after the batch: notes %q version %d", got2.Notes, got2.Version)
	}
	if got3.Notes != "" || got3.Version != 1 {
		t.Errorf("r3 changed by an already processed message: notes %q version %d", got3.Notes, got3.Version)
	}
	if res := batch[2].Result; res.Notes != "13" || res.Version != 3 || len(res.Timeline) != 3 {
		t.Errorf("Result of the last update of r1: notes %q version %d timeline %d", res.Notes, res.Version, len(res.Timeline))
	}
	var ids []string
	for _, m := range pending(t, s)[before:] {
		ids = append(ids, m.ID)
	}
	if want := []string{ev1.ID, ev3.ID, ev7.ID}; fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Errorf("outbox after the batch %v, want %v in batch order", ids, want)
	}

	// Redelivered: nothing changes twice; a receipt of the single path
	// counts too.
	again := []*intake.Update{{RequestID: r1.ID, Receipt: rc("msg_3"), Apply: appendNote("3")}}
	if err := s.UpdateRequests(ctx, again); err != nil || !errors.Is(again[0].Err, outbox.ErrAlreadyProcessed) {
		t.Errorf("redelivery: %v, Err %v", err, again[0].Err)
	}
	if _, err := s.UpdateRequest(ctx, r2.ID, func(r *intake.Request) (intake.Change, error) {
		r.Advance(at)
		return intake.Change{Receipt: rc("msg_7")}, nil
	}); !errors.Is(err, outbox.ErrAlreadyProcessed) {
		t.Errorf("single update with a batched receipt: %v", err)
	}
	if got, _ := s.Request(ctx, r1.ID); got.Version != 3 {
		t.Errorf("r1 version %d after redeliveries, want 3", got.Version)
	}
	// The receipt belongs on the update, not in the change.
	misplaced := []*intake.Update{
		{RequestID: r3.ID, Apply: func(r *intake.Request) (intake.Change, error) {
			r.Advance(at)
			return intake.Change{Receipt: rc("msg_9")}, nil
		}},
		// A change that does not advance the version is refused.
		{RequestID: r3.ID, Apply: func(r *intake.Request) (intake.Change, error) { return intake.Change{}, nil }},
	}
	if err := s.UpdateRequests(ctx, misplaced); err != nil || misplaced[0].Err == nil || !errors.Is(misplaced[1].Err, intake.ErrVersion) {
		t.Errorf("a receipt in the change, a version not advanced: %v, Errs %v, %v", err, misplaced[0].Err, misplaced[1].Err)
	}
}

// A change the database refuses fails the whole batch: nothing of it is
// committed, receipts included.
func testUpdateBatchAtomic(t *testing.T, s MessagingStore) {
	ctx := context.Background()
	owner := addUser(t, s, "ayse", identity.Customer)
	driver := addUser(t, s, "driver1", identity.Driver)
	r1 := newRequest(owner.ID, 0, "İstanbul", "anadolu", intake.Tow)
	r2 := newRequest(owner.ID, time.Second, "İstanbul", "anadolu", intake.Tow)
	r3 := newRequest(owner.ID, 2*time.Second, "İstanbul", "anadolu", intake.Tow)
	mustCreate(t, s, creation(r1, "", ""), creation(r2, "", ""), creation(r3, "", ""))
	before := len(pending(t, s))
	assign := func(r *intake.Request) (intake.Change, error) {
		r.Advance(base.Add(time.Hour))
		r.Status = intake.StatusAssigned
		r.Assignment = &intake.Assignment{DriverID: driver.ID, DriverName: driver.Name, VehiclePlate: "34TOW1", AssignedAt: base, ETASeconds: 60}
		ev, _ := outbox.New(outbox.EventSubject(outbox.EventRequestStatusChanged), outbox.EventRequestStatusChanged, base, r.ID, outbox.SystemActor, nil)
		return intake.Change{Outbox: []outbox.Message{ev}}, nil
	}
	rc := func(msg string) *outbox.Receipt { return &outbox.Receipt{Consumer: "dispatch", MessageID: msg} }
	batch := []*intake.Update{
		{RequestID: r1.ID, Receipt: rc("msg_ok"), Apply: appendNote("+")},
		{RequestID: r2.ID, Receipt: rc("msg_2"), Apply: assign},
		{RequestID: r3.ID, Receipt: rc("msg_3"), Apply: assign}, // the same driver on two open jobs
	}
	if err := s.UpdateRequests(ctx, batch); !errors.Is(err, intake.ErrRowRejected) {
		t.Fatalf("a batch assigning one driver twice: err = %v, want ErrRowRejected", err)
	}
	for _, r := range []intake.Request{r1, r2, r3} {
		if got, _ := s.Request(ctx, r.ID); got.Version != 1 || got.Notes != r.Notes || got.Assignment != nil {
			t.Errorf("%s changed by a failed batch: version %d notes %q", r.ID, got.Version, got.Notes)
		}
	}
	if n := len(pending(t, s)); n != before {
		t.Errorf("a failed batch left %d outbox rows", n-before)
	}
	// Nothing was recorded: each update alone applies (but the last).
	for i, u := range batch {
		one := []*intake.Update{{RequestID: u.RequestID, Receipt: u.Receipt, Apply: u.Apply}}
		err := s.UpdateRequests(ctx, one)
		if i < 2 && (err != nil || one[0].Err != nil) {
			t.Errorf("update %d alone: %v, Err %v", i, err, one[0].Err)
		}
		if i == 2 && err == nil {
			t.Errorf("update %d alone assigned the driver twice", i)
		}
	}
}

// Batches that share requests, taken in opposite orders, neither deadlock
// nor lose an update.
func testUpdateBatchConcurrent(t *testing.T, s MessagingStore) {
	ctx := context.Background()
	owner := addUser(t, s, "ayse", identity.Customer)
	var rs []intake.Request
	for i := range 5 {
		r := newRequest(owner.ID, time.Duration(i)*time.Second, "İstanbul", "anadolu", intake.Tow)
		r.Notes = ""
		rs = append(rs, r)
		mustCreate(t, s, creation(r, "", ""))
	}
	const writers, rounds = 4, 10
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for round := range rounds {
				var batch []*intake.Update
				for i := range rs {
					r := rs[i]
					if w%2 == 1 {
						r = rs[len(rs)-1-i]
					}
					batch = append(batch, &intake.Update{RequestID: r.ID,
						Receipt: &outbox.Receipt{Consumer: "c", MessageID: fmt.Sprintf("m-%d-%d-%s", w, round, r.ID)},
						Apply:   appendNote("x")})
				}
				if err := s.UpdateRequests(ctx, batch); err != nil {
					t.Errorf("writer %d round %d: %v", w, round, err)
					return
				}
				for _, u := range batch {
					if u.Err != nil {
						t.Errorf("writer %d round %d: %s: %v", w, round, u.RequestID, u.Err)
					}
				}
			}
		})
	}
	wg.Wait()
	for _, r := range rs {
		got, err := s.Request(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Notes) != writers*rounds || got.Version != 1+writers*rounds {
			t.Errorf("%s: notes %d, version %d; want %d updates (lost some?)", r.ID, len(got.Notes), got.Version, writers*rounds)
		}
	}
}
