// Package storetest is the conformance suite that every operational store
// passes. A store package calls Run with a function that opens a fresh,
// empty store; the suite then checks the contract of intake.Store and
// account.Store against the real engine.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/fold"
	"github.com/yolda/yolda/internal/id"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
)

// Store is what the suite exercises.
type Store interface {
	intake.Store
	account.Store
	// PendingOutbox returns unsent outbox messages in commit order.
	PendingOutbox(ctx context.Context, limit int) ([]outbox.Message, error)
}

// Run runs the suite. open must return a new empty store for each call and
// arrange its cleanup with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) Store) {
	t.Run("Users", func(t *testing.T) { testUsers(t, open(t)) })
	t.Run("CreateAndRead", func(t *testing.T) { testCreateAndRead(t, open(t)) })
	t.Run("Idempotency", func(t *testing.T) { testIdempotency(t, open(t)) })
	t.Run("IdempotencyConcurrent", func(t *testing.T) { testIdempotencyConcurrent(t, open(t)) })
	t.Run("BatchIsAtomic", func(t *testing.T) { testBatchAtomic(t, open(t)) })
	t.Run("ListFiltersAndPages", func(t *testing.T) { testList(t, open(t)) })
	t.Run("Update", func(t *testing.T) { testUpdate(t, open(t)) })
	t.Run("UpdateConcurrent", func(t *testing.T) { testUpdateConcurrent(t, open(t)) })
	t.Run("ReadIsOneSnapshot", func(t *testing.T) { testReadIsOneSnapshot(t, open(t)) })
	t.Run("DriverNeverOnTwoOpenJobs", func(t *testing.T) { testOneOpenJobPerDriver(t, open(t)) })
	t.Run("TimelineVersions", func(t *testing.T) { testTimelineVersions(t, open(t)) })
	t.Run("ProvinceKeyAgreesWithFold", func(t *testing.T) { testProvinceKey(t, open(t)) })
}

// fixtures

var base = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func addUser(t testing.TB, s Store, username string, role identity.Role) account.User {
	t.Helper()
	u := account.User{
		ID: id.New("usr", time.Now()), Username: username, Role: role,
		Name: "Name " + username, Phone: "+905551112233", PasswordHash: "$argon2id$x", CreatedAt: base, UpdatedAt: base,
	}
	if role == identity.Driver {
		u.Driver = &account.DriverProfile{VehiclePlate: "34TOW" + username[len(username)-1:], VehicleKind: fleet.TowTruck, Capabilities: []intake.ServiceType{intake.Tow, intake.JumpStart}}
	}
	if err := s.CreateUser(context.Background(), u); err != nil {
		t.Fatalf("CreateUser(%s): %v", username, err)
	}
	return u
}

// newRequest builds a complete request created at base+offset.
func newRequest(owner string, offset time.Duration, province, insurer string, st intake.ServiceType) intake.Request {
	at := base.Add(offset)
	reason, ref := "policy valid", "REF-1"
	r := intake.Request{
		ID: id.New("req", at), OwnerID: owner, Status: intake.StatusReceived, ServiceType: st,
		Location: intake.Location{Lat: 41.0082, Lng: 28.9784, Address: "Fatih, İstanbul", Province: province, District: "Fatih"},
		Vehicle:  intake.Vehicle{Plate: "34ABC123", Make: "Fiat", Model: "Egea", Type: "car"},
		Policy:   intake.Policy{Insurer: insurer, PolicyNumber: "POL-123456"},
		Contact:  intake.Contact{Name: "Ayşe Yılmaz", Phone: "+905551112233"},
		Notes:    "Left lane, hazard lights on",
		Insurance: intake.Insurance{Status: intake.InsurancePending, Reason: &reason, Reference: &ref,
			Coverage: json.RawMessage(`{"max_tow_km":100}`), CheckedAt: &at, Flags: []string{intake.FlagTowBeyondCover}},
		Timeline:  []intake.TimelineEntry{{Status: intake.StatusReceived, At: at, ActorID: owner}},
		CreatedAt: at, UpdatedAt: at, Version: 1,
	}
	if st == intake.Tow {
		r.Destination = &intake.Location{Lat: 41.05, Lng: 29.01, Address: "Servis, Şişli"}
	}
	return r
}

func creation(r intake.Request, key, fingerprint string) *intake.Creation {
	msg, err := outbox.New(outbox.EventSubject(outbox.EventRequestCreated), outbox.EventRequestCreated, r.CreatedAt, r.ID, outbox.Actor{ID: r.OwnerID}, map[string]string{"id": r.ID})
	if err != nil {
		panic(err)
	}
	job, _ := outbox.New(outbox.SubjectDispatchRequest, "dispatch.request", r.CreatedAt, r.ID, outbox.Actor{ID: r.OwnerID}, map[string]string{"id": r.ID})
	return &intake.Creation{Request: r, IdempotencyKey: key, Fingerprint: fingerprint, Outbox: []outbox.Message{job, msg}}
}

func mustCreate(t testing.TB, s Store, cs ...*intake.Creation) {
	t.Helper()
	if err := s.CreateRequests(context.Background(), cs); err != nil {
		t.Fatalf("CreateRequests: %v", err)
	}
}

func pending(t *testing.T, s Store) []outbox.Message {
	t.Helper()
	msgs, err := s.PendingOutbox(context.Background(), 10000)
	if err != nil {
		t.Fatalf("PendingOutbox: %v", err)
	}
	return msgs
}

// timeOpts compares stored values: times to the microsecond, and an
// empty list the same as none.
var timeOpts = cmp.Options{cmpopts.EquateApproxTime(time.Microsecond), cmpopts.EquateEmpty()}

// tests

func testUsers(t *testing.T, s Store) {
	ctx := context.Background()
	c := addUser(t, s, "ayse", identity.Customer)
	d := addUser(t, s, "driver1", identity.Driver)

	got, err := s.UserByUsername(ctx, "ayse")
	if err != nil {
		t.Fatalf("UserByUsername: %v", err)
	}
	if diff := cmp.Diff(c, got, timeOpts); diff != "" {
		t.Errorf("customer round trip (-want +got):\n%s", diff)
	}
	got, err = s.UserByUsername(ctx, "driver1")
	if err != nil {
		t.Fatalf("UserByUsername: %v", err)
	}
	if diff := cmp.Diff(d, got, timeOpts); diff != "" {
		t.Errorf("driver round trip (-want +got):\n%s", diff)
	}
	if _, err := s.UserByUsername(ctx, "nobody"); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("unknown user: err = %v, want ErrNotFound", err)
	}
	dup := c
	dup.ID = id.New("usr", time.Now())
	if err := s.CreateUser(ctx, dup); !errors.Is(err, account.ErrUsernameTaken) {
		t.Errorf("duplicate username: err = %v, want ErrUsernameTaken", err)
	}
}

func testCreateAndRead(t *testing.T, s Store) {
	ctx := context.Background()
	owner := addUser(t, s, "ayse", identity.Customer)
	tow := newRequest(owner.ID, 0, "İstanbul", "anadolu", intake.Tow)
	jump := newRequest(owner.ID, time.Second, "Ankara", "axa", intake.JumpStart)
	jump.Insurance = intake.Insurance{Status: intake.InsurancePending} // all optional parts empty
	jump.Notes = ""
	c1, c2 := creation(tow, "", ""), creation(jump, "", "")
	mustCreate(t, s, c1, c2)
	if c1.ReplayOf != "" || c1.Err != nil || c2.ReplayOf != "" || c2.Err != nil {
		t.Fatalf("fresh creations reported replay/err: %+v %+v", c1, c2)
	}
	for _, want := range []intake.Request{tow, jump} {
		got, err := s.Request(ctx, want.ID)
		if err != nil {
			t.Fatalf("Request(%s): %v", want.ID, err)
		}
		if diff := cmp.Diff(want, got, timeOpts); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
	if _, err := s.Request(ctx, id.New("req", time.Now())); !errors.Is(err, intake.ErrNotFound) {
		t.Errorf("missing request: err = %v, want ErrNotFound", err)
	}
	// The outbox holds every message of both creations, in commit order.
	var wantIDs []string
	for _, c := range []*intake.Creation{c1, c2} {
		for _, m := range c.Outbox {
			wantIDs = append(wantIDs, m.ID)
		}
	}
	msgs := pending(t, s)
	var gotIDs []string
	for _, m := range msgs {
		gotIDs = append(gotIDs, m.ID)
	}
	if diff := cmp.Diff(wantIDs, gotIDs); diff != "" {
		t.Errorf("outbox ids (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(c1.Outbox[0], msgs[0], timeOpts, cmpopts.IgnoreFields(outbox.Message{}, "Seq")); diff != "" {
		t.Errorf("outbox message round trip (-want +got):\n%s", diff)
	}
}

func testIdempotency(t *testing.T, s Store) {
	ctx := context.Background()
	ayse := addUser(t, s, "ayse", identity.Customer)
	mehmet := addUser(t, s, "mehmet", identity.Customer)

	first := creation(newRequest(ayse.ID, 0, "İstanbul", "anadolu", intake.Tow), "key-1", "fp-a")
	mustCreate(t, s, first)

	again := creation(newRequest(ayse.ID, time.Second, "İstanbul", "anadolu", intake.Tow), "key-1", "fp-a")
	other := creation(newRequest(ayse.ID, 2*time.Second, "İstanbul", "anadolu", intake.Tow), "key-1", "fp-b")
	// Another owner may use the same key.
	mehmets := creation(newRequest(mehmet.ID, 3*time.Second, "İstanbul", "anadolu", intake.Tow), "key-1", "fp-b")
	// The same new key twice in one batch: the second is a replay of the first.
	inBatchA := creation(newRequest(ayse.ID, 4*time.Second, "İzmir", "axa", intake.Lockout), "key-2", "fp-c")
	inBatchB := creation(newRequest(ayse.ID, 5*time.Second, "İzmir", "axa", intake.Lockout), "key-2", "fp-c")
	mustCreate(t, s, again, other, mehmets, inBatchA, inBatchB)

	if again.ReplayOf != first.Request.ID || again.Err != nil {
		t.Errorf("same key, same body: ReplayOf=%q Err=%v, want %q", again.ReplayOf, again.Err, first.Request.ID)
	}
	if !errors.Is(other.Err, intake.ErrIdempotencyMismatch) {
		t.Errorf("same key, other body: Err=%v, want ErrIdempotencyMismatch", other.Err)
	}
	if mehmets.ReplayOf != "" || mehmets.Err != nil {
		t.Errorf("other owner, same key: ReplayOf=%q Err=%v, want a fresh request", mehmets.ReplayOf, mehmets.Err)
	}
	if inBatchB.ReplayOf != inBatchA.Request.ID {
		t.Errorf("same key twice in a batch: ReplayOf=%q, want %q", inBatchB.ReplayOf, inBatchA.Request.ID)
	}
	for _, c := range []*intake.Creation{again, other, inBatchB} {
		if _, err := s.Request(ctx, c.Request.ID); !errors.Is(err, intake.ErrNotFound) {
			t.Errorf("refused creation %s was stored (err=%v)", c.Request.ID, err)
		}
	}
	// Only the three accepted creations left outbox rows (two each).
	if n := len(pending(t, s)); n != 6 {
		t.Errorf("outbox rows = %d, want 6", n)
	}
}

func testIdempotencyConcurrent(t *testing.T, s Store) {
	ctx := context.Background()
	owner := addUser(t, s, "ayse", identity.Customer)
	const callers = 16
	creations := make([]*intake.Creation, callers)
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		creations[i] = creation(newRequest(owner.ID, time.Duration(i)*time.Millisecond, "İstanbul", "anadolu", intake.Tow), "same-key", "fp")
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.CreateRequests(ctx, []*intake.Creation{creations[i]})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("CreateRequests: %v", err)
		}
	}
	var winner string
	for _, c := range creations {
		if c.ReplayOf == "" && c.Err == nil {
			if winner != "" {
				t.Fatalf("two creations won the same key: %s and %s", winner, c.Request.ID)
			}
			winner = c.Request.ID
		}
	}
	if winner == "" {
		t.Fatal("no creation won the key")
	}
	for _, c := range creations {
		if c.Request.ID != winner && c.ReplayOf != winner {
			t.Errorf("creation %s: ReplayOf=%q Err=%v, want replay of %s", c.Request.ID, c.ReplayOf, c.Err, winner)
		}
	}
	all, err := s.Requests(ctx, intake.Filter{OwnerID: owner.ID, Limit: 100})
	if err != nil {
		t.Fatalf("Requests: %v", err)
	}
	if len(all) != 1 {
		t.Errorf("stored %d requests for one key, want 1", len(all))
	}
}

func testBatchAtomic(t *testing.T, s Store) {
	ctx := context.Background()
	owner := addUser(t, s, "ayse", identity.Customer)
	good := creation(newRequest(owner.ID, 0, "İstanbul", "anadolu", intake.Tow), "", "")
	// An owner that does not exist violates the foreign key: the whole
	// batch must fail and leave nothing behind.
	bad := creation(newRequest("usr_nobody", time.Second, "İstanbul", "anadolu", intake.Tow), "k", "fp")
	err := s.CreateRequests(ctx, []*intake.Creation{good, bad})
	if err == nil {
		t.Fatal("batch with an invalid row committed")
	}
	// The store says a row caused it, so that group commit retries the
	// rows apart rather than failing them all.
	if !errors.Is(err, intake.ErrRowRejected) {
		t.Errorf("batch with an invalid row: %v does not wrap ErrRowRejected", err)
	}
	if _, err := s.Request(ctx, good.Request.ID); !errors.Is(err, intake.ErrNotFound) {
		t.Errorf("good row of a failed batch is visible (err=%v)", err)
	}
	if n := len(pending(t, s)); n != 0 {
		t.Errorf("failed batch left %d outbox rows", n)
	}
	// The batch can be retried once the bad row is gone.
	mustCreate(t, s, good)
	if _, err := s.Request(ctx, good.Request.ID); err != nil {
		t.Errorf("retried row: %v", err)
	}
}

func testList(t *testing.T, s Store) {
	ctx := context.Background()
	ayse := addUser(t, s, "ayse", identity.Customer)
	mehmet := addUser(t, s, "mehmet", identity.Customer)
	var all []intake.Request // oldest first
	var cs []*intake.Creation
	provinces := []string{"İstanbul", "Ankara", "İzmir"}
	insurers := []string{"anadolu", "axa"}
	for i := range 30 {
		owner := ayse.ID
		if i%3 == 0 {
			owner = mehmet.ID
		}
		st := intake.ServiceTypes[i%len(intake.ServiceTypes)]
		r := newRequest(owner, time.Duration(i)*time.Minute, provinces[i%3], insurers[i%2], st)
		if i%4 == 0 {
			r.Status = intake.StatusDispatching
		}
		all = append(all, r)
		cs = append(cs, creation(r, "", ""))
	}
	mustCreate(t, s, cs...)

	ids := func(rs []intake.Request) []string {
		out := make([]string, len(rs))
		for i, r := range rs {
			out[i] = r.ID
		}
		return out
	}
	expect := func(keep func(intake.Request) bool) []string {
		var out []string
		for i := len(all) - 1; i >= 0; i-- {
			if keep(all[i]) {
				out = append(out, all[i].ID)
			}
		}
		return out
	}
	cases := []struct {
		name string
		f    intake.Filter
		keep func(intake.Request) bool
	}{
		{"all", intake.Filter{}, func(intake.Request) bool { return true }},
		{"owner", intake.Filter{OwnerID: ayse.ID}, func(r intake.Request) bool { return r.OwnerID == ayse.ID }},
		{"status", intake.Filter{Statuses: []intake.Status{intake.StatusDispatching}}, func(r intake.Request) bool { return r.Status == intake.StatusDispatching }},
		{"statuses", intake.Filter{Statuses: []intake.Status{intake.StatusDispatching, intake.StatusReceived}}, func(intake.Request) bool { return true }},
		{"province", intake.Filter{Province: "Ankara"}, func(r intake.Request) bool { return r.Location.Province == "Ankara" }},
		{"province as typed without Turkish letters", intake.Filter{Province: "IZMIR"}, func(r intake.Request) bool { return r.Location.Province == "İzmir" }},
		{"insurer", intake.Filter{Insurer: "axa"}, func(r intake.Request) bool { return r.Policy.Insurer == "axa" }},
		{"service type", intake.Filter{ServiceType: intake.Tow}, func(r intake.Request) bool { return r.ServiceType == intake.Tow }},
		{"time range", intake.Filter{From: base.Add(5 * time.Minute), To: base.Add(10 * time.Minute)}, func(r intake.Request) bool {
			return !r.CreatedAt.Before(base.Add(5*time.Minute)) && r.CreatedAt.Before(base.Add(10*time.Minute))
		}},
		{"combined", intake.Filter{OwnerID: ayse.ID, Province: "İzmir", Insurer: "anadolu"}, func(r intake.Request) bool {
			return r.OwnerID == ayse.ID && r.Location.Province == "İzmir" && r.Policy.Insurer == "anadolu"
		}},
		{"id", intake.Filter{ID: all[3].ID}, func(r intake.Request) bool { return r.ID == all[3].ID }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.f.Limit = 100
			got, err := s.Requests(ctx, tc.f)
			if err != nil {
				t.Fatalf("Requests: %v", err)
			}
			want := expect(tc.keep)
			if len(want) == 0 {
				t.Fatal("fixture selects nothing; the case proves nothing")
			}
			if diff := cmp.Diff(want, ids(got)); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
			for _, r := range got {
				if len(r.Timeline) != 1 {
					t.Errorf("request %s listed with %d timeline entries, want 1", r.ID, len(r.Timeline))
				}
			}
		})
	}
	t.Run("id outside the scope", func(t *testing.T) {
		// How intake reads one request for a caller: someone else's
		// request is found as little as a missing one.
		for _, r := range all {
			if r.OwnerID == ayse.ID {
				continue
			}
			got, err := s.Requests(ctx, intake.Filter{ID: r.ID, OwnerID: ayse.ID, Limit: 2})
			if err != nil || len(got) != 0 {
				t.Errorf("another owner's %s through ayse's scope: %d found, err %v", r.ID, len(got), err)
			}
			return
		}
		t.Fatal("fixture has no request of another owner")
	})
	t.Run("pages", func(t *testing.T) {
		var got []string
		f := intake.Filter{OwnerID: ayse.ID, Limit: 7}
		for page := 0; page < 10; page++ {
			rs, err := s.Requests(ctx, f)
			if err != nil {
				t.Fatalf("Requests: %v", err)
			}
			got = append(got, ids(rs)...)
			if len(rs) < f.Limit {
				break
			}
			f.Before = rs[len(rs)-1].ID
		}
		if diff := cmp.Diff(expect(func(r intake.Request) bool { return r.OwnerID == ayse.ID }), got); diff != "" {
			t.Errorf("paged ids (-want +got):\n%s", diff)
		}
	})
}

func testUpdate(t *testing.T, s Store) {
	ctx := context.Background()
	owner := addUser(t, s, "ayse", identity.Customer)
	r := newRequest(owner.ID, 0, "İstanbul", "anadolu", intake.Tow)
	mustCreate(t, s, creation(r, "", ""))
	before := len(pending(t, s))

	ev, _ := outbox.New(outbox.EventSubject(outbox.EventRequestStatusChanged), outbox.EventRequestStatusChanged, base, r.ID, outbox.Actor{}, map[string]string{"to": "cancelled"})
	at := base.Add(time.Minute)
	got, err := s.UpdateRequest(ctx, r.ID, func(cur *intake.Request) (intake.Change, error) {
		if cur.Status != intake.StatusReceived || len(cur.Timeline) != 1 {
			return intake.Change{}, fmt.Errorf("fn saw status %s with %d timeline entries", cur.Status, len(cur.Timeline))
		}
		cur.Status = intake.StatusCancelled
		cur.Advance(at)
		return intake.Change{Timeline: &intake.TimelineEntry{Status: intake.StatusCancelled, At: at, ActorID: owner.ID, Reason: "found help"}, Outbox: []outbox.Message{ev}}, nil
	})
	if err != nil {
		t.Fatalf("UpdateRequest: %v", err)
	}
	stored, err := s.Request(ctx, r.ID)
	if err != nil {
		t.Fatalf("Request: %v", err)
	}
	if diff := cmp.Diff(got, stored, timeOpts); diff != "" {
		t.Errorf("returned and stored differ (-returned +stored):\n%s", diff)
	}
	if stored.Status != intake.StatusCancelled || stored.Version != 2 || len(stored.Timeline) != 2 ||
		stored.Timeline[1].Reason != "found help" || !stored.UpdatedAt.Equal(at) {
		t.Errorf("stored after update: status=%s version=%d timeline=%+v updated=%v", stored.Status, stored.Version, stored.Timeline, stored.UpdatedAt)
	}
	msgs := pending(t, s)
	if len(msgs) != before+1 || msgs[len(msgs)-1].ID != ev.ID {
		t.Errorf("outbox after update: %d rows, want %d ending with %s", len(msgs), before+1, ev.ID)
	}

	// An error from fn changes nothing.
	boom := errors.New("boom")
	_, err = s.UpdateRequest(ctx, r.ID, func(cur *intake.Request) (intake.Change, error) {
		cur.Status = intake.StatusCompleted
		cur.Version++
		return intake.Change{}, boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("fn error: got %v, want boom", err)
	}
	after, _ := s.Request(ctx, r.ID)
	if after.Status != intake.StatusCancelled || after.Version != 2 {
		t.Errorf("aborted update changed the request: status=%s version=%d", after.Status, after.Version)
	}
	if n := len(pending(t, s)); n != before+1 {
		t.Errorf("aborted update left outbox rows: %d", n)
	}
	if _, err := s.UpdateRequest(ctx, id.New("req", time.Now()), func(*intake.Request) (intake.Change, error) {
		return intake.Change{}, nil
	}); !errors.Is(err, intake.ErrNotFound) {
		t.Errorf("update of a missing request: err = %v, want ErrNotFound", err)
	}

	// A change must advance the version by exactly one, or nothing of it
	// is stored: its messages would carry a seq that does not follow.
	for _, step := range []int{0, 2} {
		_, err := s.UpdateRequest(ctx, r.ID, func(cur *intake.Request) (intake.Change, error) {
			cur.Notes = "changed"
			cur.Version += step
			return intake.Change{Outbox: []outbox.Message{ev}}, nil
		})
		if !errors.Is(err, intake.ErrVersion) {
			t.Errorf("version advanced by %d: err = %v, want ErrVersion", step, err)
		}
	}
	after, _ = s.Request(ctx, r.ID)
	if after.Notes == "changed" || after.Version != 2 {
		t.Errorf("a change with a bad version was stored: notes=%q version=%d", after.Notes, after.Version)
	}
	if n := len(pending(t, s)); n != before+1 {
		t.Errorf("a change with a bad version left outbox rows: %d", n-before-1)
	}
}

func testUpdateConcurrent(t *testing.T, s Store) {
	ctx := context.Background()
	owner := addUser(t, s, "ayse", identity.Customer)
	r := newRequest(owner.ID, 0, "İstanbul", "anadolu", intake.Tow)
	r.Notes = ""
	mustCreate(t, s, creation(r, "", ""))
	const writers = 20
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.UpdateRequest(ctx, r.ID, func(cur *intake.Request) (intake.Change, error) {
				cur.Notes += "x"
				cur.Version++
				return intake.Change{}, nil
			}); err != nil {
				t.Errorf("UpdateRequest: %v", err)
			}
		}()
	}
	wg.Wait()
	got, err := s.Request(ctx, r.ID)
	if err != nil {
		t.Fatalf("Request: %v", err)
	}
	if len(got.Notes) != writers || got.Version != 1+writers {
		t.Errorf("after %d concurrent updates: notes=%q version=%d (lost updates)", writers, got.Notes, got.Version)
	}
}

// testReadIsOneSnapshot: a request and its timeline are read from one
// snapshot, by Request and by Requests alike, however fast it changes.
// Every update appends one note character and one timeline entry, so a
// reader that mixed two states would see them disagree.
func testReadIsOneSnapshot(t *testing.T, s Store) {
	ctx := context.Background()
	owner := addUser(t, s, "ayse", identity.Customer)
	r := newRequest(owner.ID, 0, "İstanbul", "anadolu", intake.Tow)
	r.Notes = ""
	mustCreate(t, s, creation(r, "", ""))
	const updates = 300
	done := make(chan struct{})
	var wg sync.WaitGroup
	var reads, mixed sync.Map
	check := func(how string, got intake.Request) {
		reads.Store(how, true)
		if len(got.Timeline) != 1+len(got.Notes) {
			mixed.Store(how, fmt.Sprintf("%d timeline entries with %d notes", len(got.Timeline), len(got.Notes)))
		}
	}
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				got, err := s.Request(ctx, r.ID)
				if err != nil {
					t.Errorf("Request: %v", err)
					return
				}
				check("Request", got)
				list, err := s.Requests(ctx, intake.Filter{OwnerID: owner.ID, Limit: 10})
				if err != nil || len(list) != 1 {
					t.Errorf("Requests: %d %v", len(list), err)
					return
				}
				check("Requests", list[0])
			}
		}()
	}
	for i := range updates {
		if _, err := s.UpdateRequest(ctx, r.ID, func(cur *intake.Request) (intake.Change, error) {
			cur.Notes += "x"
			cur.Version++
			return intake.Change{Timeline: &intake.TimelineEntry{Status: cur.Status, At: base.Add(time.Duration(i) * time.Second), ActorID: owner.ID}}, nil
		}); err != nil {
			t.Fatalf("UpdateRequest: %v", err)
		}
	}
	close(done)
	wg.Wait()
	for _, how := range []string{"Request", "Requests"} {
		if _, ok := reads.Load(how); !ok {
			t.Errorf("no %s read ran during the updates", how)
		}
		if v, ok := mixed.Load(how); ok {
			t.Errorf("%s mixed two states: %v", how, v)
		}
	}
}

func testOneOpenJobPerDriver(t *testing.T, s Store) {
	ctx := context.Background()
	owner := addUser(t, s, "ayse", identity.Customer)
	driver := addUser(t, s, "driver1", identity.Driver)
	r1 := newRequest(owner.ID, 0, "İstanbul", "anadolu", intake.Tow)
	r2 := newRequest(owner.ID, time.Second, "İstanbul", "anadolu", intake.Tow)
	mustCreate(t, s, creation(r1, "", ""), creation(r2, "", ""))
	assign := func(cur *intake.Request) (intake.Change, error) {
		cur.Status = intake.StatusAssigned
		cur.Version++
		cur.Assignment = &intake.Assignment{DriverID: driver.ID, DriverName: driver.Name, VehiclePlate: "34TOW1", AssignedAt: base, ETASeconds: 300}
		return intake.Change{}, nil
	}
	got, err := s.UpdateRequest(ctx, r1.ID, assign)
	if err != nil {
		t.Fatalf("first assignment: %v", err)
	}
	if got.Assignment == nil || got.Assignment.DriverID != driver.ID || got.Assignment.ETASeconds != 300 {
		t.Fatalf("assignment not returned: %+v", got.Assignment)
	}
	if _, err := s.UpdateRequest(ctx, r2.ID, assign); err == nil {
		t.Fatal("the same driver was assigned to two open requests")
	}
	// Once the first job is completed the driver may take the next.
	if _, err := s.UpdateRequest(ctx, r1.ID, func(cur *intake.Request) (intake.Change, error) {
		cur.Status = intake.StatusCompleted
		cur.Version++
		return intake.Change{}, nil
	}); err != nil {
		t.Fatalf("complete: %v", err)
	}
	if _, err := s.UpdateRequest(ctx, r2.ID, assign); err != nil {
		t.Errorf("assignment after completion: %v", err)
	}
}

// The store's province key (a generated column) and fold.Key agree: every
// way of typing a Turkish province finds it, and only it.
func testProvinceKey(t *testing.T, s Store) {
	ctx := context.Background()
	ayse := addUser(t, s, "ayse", identity.Customer)
	provinces := map[string][]string{
		"İzmir":     {"Izmir", "izmir", "IZMIR", "ızmir", "İZMİR"},
		"Şanlıurfa": {"Sanliurfa", "SANLIURFA", "şanlıurfa"},
		"Çanakkale": {"canakkale", "ÇANAKKALE"},
		"Muğla":     {"mugla", "MUĞLA"},
		"Düzce":     {"duzce", "DÜZCE"},
		"Kırşehir":  {"kirsehir", "KIRŞEHİR"},
		"Ağrı":      {"agri", "AĞRI"},
		"Ankara":    {"ankara", " Ankara "},
	}
	want := map[string]string{}
	var cs []*intake.Creation
	i := 0
	for name := range provinces {
		r := newRequest(ayse.ID, time.Duration(i)*time.Second, name, "anadolu", intake.Tow)
		want[name] = r.ID
		cs = append(cs, creation(r, "", ""))
		i++
	}
	mustCreate(t, s, cs...)
	for name, typed := range provinces {
		for _, q := range append(typed, name) {
			got, err := s.Requests(ctx, intake.Filter{Province: q, Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].ID != want[name] {
				t.Errorf("province %q (fold key %q): %d requests, want the one in %s", q, fold.Key(q), len(got), name)
			}
		}
	}
}
