package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/audit"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/id"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
)

// AccountStore is what the accounts and audit cases exercise.
type AccountStore interface {
	account.Store
	audit.Store
}

// RunAccounts runs the account-management and audit-trail cases. open
// must return a new empty store for each call and arrange its cleanup.
func RunAccounts(t *testing.T, open func(t *testing.T) AccountStore) {
	t.Run("UserRoundTrip", func(t *testing.T) { testUserRoundTrip(t, open(t)) })
	t.Run("UserList", func(t *testing.T) { testUserList(t, open(t)) })
	t.Run("UpdateUser", func(t *testing.T) { testUpdateUser(t, open(t)) })
	t.Run("UpdateUserIsAtomicWithItsEvents", func(t *testing.T) { testUpdateUserAtomic(t, open(t)) })
	t.Run("UpdateUserConcurrent", func(t *testing.T) { testUpdateUserConcurrent(t, open(t)) })
	t.Run("AuditAppendAndFilter", func(t *testing.T) { testAuditFilter(t, open(t)) })
	t.Run("AuditPrune", func(t *testing.T) { testAuditPrune(t, open(t)) })
}

func newUser(username string, role identity.Role, at time.Time) account.User {
	u := account.User{
		ID: id.New("usr", at), Username: username, Role: role, Name: "Name " + username, Phone: "+905551112233",
		PasswordHash: "$argon2id$x", CreatedAt: at, UpdatedAt: at,
	}
	if role == identity.Driver {
		u.Driver = &account.DriverProfile{VehiclePlate: "34AB123", VehicleKind: fleet.TowTruck, Capabilities: []intake.ServiceType{intake.Tow}}
	}
	return u
}

func event(action audit.Action, actor, target string, at time.Time, details map[string]string) audit.Event {
	return audit.Event{
		ID: id.New("aud", at), At: at, Action: action, ActorID: actor, ActorRole: identity.Admin, Target: target,
		Address: "203.0.113.7", RequestID: "rid-1", Details: details,
	}
}

func events(t *testing.T, s AccountStore, f audit.Filter) []audit.Event {
	t.Helper()
	if f.Limit == 0 {
		f.Limit = 1000
	}
	got, err := s.AuditEvents(context.Background(), f)
	if err != nil {
		t.Fatalf("AuditEvents: %v", err)
	}
	return got
}

func testUserRoundTrip(t *testing.T, s AccountStore) {
	ctx := context.Background()
	u := newUser("driver7", identity.Driver, base)
	u.Disabled, u.TokenVersion, u.UpdatedAt = true, 3, base.Add(time.Minute)
	created := event(audit.UserCreated, "cli:root", u.ID, base, map[string]string{"role": "driver"})
	if err := s.CreateUser(ctx, u, created); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	for name, read := range map[string]func() (account.User, error){
		"by id":       func() (account.User, error) { return s.UserByID(ctx, u.ID) },
		"by username": func() (account.User, error) { return s.UserByUsername(ctx, u.Username) },
	} {
		got, err := read()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(u, got, timeOpts); diff != "" {
			t.Errorf("%s round trip (-want +got):\n%s", name, diff)
		}
	}
	if _, err := s.UserByID(ctx, id.New("usr", base)); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("unknown id: %v, want ErrNotFound", err)
	}
	if diff := cmp.Diff([]audit.Event{created}, events(t, s, audit.Filter{}), timeOpts); diff != "" {
		t.Errorf("the creation's event (-want +got):\n%s", diff)
	}
	// A taken username writes neither the user nor its event.
	dup := newUser("driver7", identity.Customer, base.Add(time.Second))
	if err := s.CreateUser(ctx, dup, event(audit.UserCreated, "cli:root", dup.ID, base, nil)); !errors.Is(err, account.ErrUsernameTaken) {
		t.Fatalf("duplicate: %v", err)
	}
	if got := events(t, s, audit.Filter{}); len(got) != 1 {
		t.Errorf("a refused creation left its event: %d events", len(got))
	}
}

func testUserList(t *testing.T, s AccountStore) {
	ctx := context.Background()
	var all []account.User
	for i, role := range []identity.Role{identity.Customer, identity.Driver, identity.Customer, identity.Operator, identity.Customer, identity.Admin} {
		u := newUser(fmt.Sprintf("user%d", i), role, base.Add(time.Duration(i)*time.Second))
		u.Disabled = i == 2
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		all = append([]account.User{u}, all...) // newest first
	}
	ids := func(us []account.User) []string {
		var out []string
		for _, u := range us {
			out = append(out, u.ID)
		}
		return out
	}
	yes, no := true, false
	cases := []struct {
		name string
		f    account.UserFilter
		want []account.User
	}{
		{"all", account.UserFilter{Limit: 10}, all},
		{"customers", account.UserFilter{Role: identity.Customer, Limit: 10}, []account.User{all[1], all[3], all[5]}},
		{"disabled", account.UserFilter{Disabled: &yes, Limit: 10}, []account.User{all[3]}},
		{"enabled customers", account.UserFilter{Role: identity.Customer, Disabled: &no, Limit: 10}, []account.User{all[1], all[5]}},
		{"first page", account.UserFilter{Limit: 2}, all[:2]},
		{"after the cursor", account.UserFilter{Before: all[1].ID, Limit: 2}, all[2:4]},
		{"drivers", account.UserFilter{Role: identity.Driver, Limit: 10}, []account.User{all[4]}},
	}
	for _, tc := range cases {
		got, err := s.Users(ctx, tc.f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if diff := cmp.Diff(ids(tc.want), ids(got)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
	got, _ := s.Users(ctx, account.UserFilter{Role: identity.Driver, Limit: 1})
	if len(got) != 1 || got[0].Driver == nil || got[0].Driver.VehiclePlate != "34AB123" {
		t.Errorf("a listed driver lacks its profile: %+v", got)
	}
}

func testUpdateUser(t *testing.T, s AccountStore) {
	ctx := context.Background()
	u := newUser("ayse", identity.Customer, base)
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	later := base.Add(time.Hour)
	ev := event(audit.UserRoleChanged, "usr_admin", u.ID, later, map[string]string{"from": "customer", "to": "operator"})
	got, err := s.UpdateUser(ctx, u.ID, func(x *account.User) ([]audit.Event, error) {
		if x.ID != u.ID || x.Role != identity.Customer {
			return nil, fmt.Errorf("fn saw %+v", x)
		}
		x.Role, x.Disabled, x.PasswordHash, x.TokenVersion, x.UpdatedAt = identity.Operator, true, "$argon2id$new", 4, later
		x.Name = "not written" // only the account fields are
		return []audit.Event{ev}, nil
	})
	if err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	want := u
	want.Role, want.Disabled, want.PasswordHash, want.TokenVersion, want.UpdatedAt = identity.Operator, true, "$argon2id$new", 4, later
	stored, err := s.UserByID(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, stored, timeOpts); diff != "" {
		t.Errorf("stored after update (-want +got):\n%s", diff)
	}
	if got.Role != identity.Operator || got.TokenVersion != 4 {
		t.Errorf("UpdateUser returned %+v", got)
	}
	if diff := cmp.Diff([]audit.Event{ev}, events(t, s, audit.Filter{}), timeOpts); diff != "" {
		t.Errorf("event of the update (-want +got):\n%s", diff)
	}
	// fn's error aborts, and is returned as is.
	boom := errors.New("boom")
	if _, err := s.UpdateUser(ctx, u.ID, func(x *account.User) ([]audit.Event, error) {
		x.Role = identity.Admin
		return []audit.Event{event(audit.UserRoleChanged, "usr_admin", u.ID, later, nil)}, boom
	}); !errors.Is(err, boom) {
		t.Errorf("fn error: %v", err)
	}
	if x, _ := s.UserByID(ctx, u.ID); x.Role != identity.Operator {
		t.Errorf("an aborted update was written: role %s", x.Role)
	}
	if n := len(events(t, s, audit.Filter{})); n != 1 {
		t.Errorf("an aborted update left its event: %d events", n)
	}
	called := false
	if _, err := s.UpdateUser(ctx, id.New("usr", base), func(*account.User) ([]audit.Event, error) {
		called = true
		return nil, nil
	}); !errors.Is(err, account.ErrNotFound) || called {
		t.Errorf("missing user: err %v, fn called %v", err, called)
	}
}

// An event that cannot be written takes the change down with it: the
// trail is never missing a change that happened.
func testUpdateUserAtomic(t *testing.T, s AccountStore) {
	ctx := context.Background()
	u := newUser("ayse", identity.Customer, base)
	taken := event(audit.UserCreated, "cli:root", u.ID, base, nil)
	if err := s.CreateUser(ctx, u, taken); err != nil {
		t.Fatal(err)
	}
	_, err := s.UpdateUser(ctx, u.ID, func(x *account.User) ([]audit.Event, error) {
		x.Role = identity.Admin
		dup := event(audit.UserRoleChanged, "usr_admin", u.ID, base, nil)
		dup.ID = taken.ID // collides: the insert fails
		return []audit.Event{dup}, nil
	})
	if err == nil {
		t.Fatal("an update whose event could not be stored succeeded")
	}
	if x, _ := s.UserByID(ctx, u.ID); x.Role != identity.Customer {
		t.Errorf("the change was kept without its event: role %s", x.Role)
	}
}

// Concurrent updates of one user lose nothing: each sees the last one's
// result.
func testUpdateUserConcurrent(t *testing.T, s AccountStore) {
	ctx := context.Background()
	u := newUser("ayse", identity.Customer, base)
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	const n = 16
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.UpdateUser(ctx, u.ID, func(x *account.User) ([]audit.Event, error) {
				x.TokenVersion++
				return []audit.Event{event(audit.UserTokensRevoked, "usr_admin", u.ID, base.Add(time.Duration(i)*time.Millisecond), nil)}, nil
			})
			if err != nil {
				t.Errorf("UpdateUser: %v", err)
			}
		}()
	}
	wg.Wait()
	got, _ := s.UserByID(ctx, u.ID)
	if got.TokenVersion != n {
		t.Errorf("token version %d after %d concurrent bumps", got.TokenVersion, n)
	}
	if e := events(t, s, audit.Filter{Action: audit.UserTokensRevoked}); len(e) != n {
		t.Errorf("%d events for %d changes", len(e), n)
	}
}

func testAuditFilter(t *testing.T, s AccountStore) {
	ctx := context.Background()
	var all []audit.Event // oldest first
	add := func(action audit.Action, actor, target string, offset time.Duration, details map[string]string) audit.Event {
		e := event(action, actor, target, base.Add(offset), details)
		all = append(all, e)
		return e
	}
	add(audit.LoginFailed, "", "usr_a", 0, map[string]string{"reason": "password"})
	add(audit.LoginSucceeded, "usr_a", "usr_a", time.Second, nil)
	add(audit.UserRoleChanged, "usr_admin", "usr_a", 2*time.Second, map[string]string{"from": "customer", "to": "operator"})
	add(audit.InsuranceDecided, "usr_a", "req_1", 3*time.Second, map[string]string{"decision": "waived"})
	add(audit.LoginSucceeded, "usr_b", "usr_b", 4*time.Second, nil)
	if err := s.AppendAudit(ctx, all[:2]...); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx, all[2:]...); err != nil {
		t.Fatal(err)
	}
	rev := func(idx ...int) []audit.Event {
		var out []audit.Event
		for _, i := range idx {
			out = append(out, all[i])
		}
		return out
	}
	cases := []struct {
		name string
		f    audit.Filter
		want []audit.Event
	}{
		{"all, newest first", audit.Filter{}, rev(4, 3, 2, 1, 0)},
		{"actor", audit.Filter{ActorID: "usr_a"}, rev(3, 1)},
		{"action", audit.Filter{Action: audit.LoginSucceeded}, rev(4, 1)},
		{"target", audit.Filter{Target: "usr_a"}, rev(2, 1, 0)},
		{"from", audit.Filter{From: base.Add(3 * time.Second)}, rev(4, 3)},
		{"to (exclusive)", audit.Filter{To: base.Add(2 * time.Second)}, rev(1, 0)},
		{"actor and action", audit.Filter{ActorID: "usr_a", Action: audit.InsuranceDecided}, rev(3)},
		{"page", audit.Filter{Limit: 2}, rev(4, 3)},
		{"after the cursor", audit.Filter{Before: all[3].ID, Limit: 2}, rev(2, 1)},
		{"nothing", audit.Filter{ActorID: "usr_nobody"}, nil},
	}
	for _, tc := range cases {
		if diff := cmp.Diff(tc.want, events(t, s, tc.f), timeOpts); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
}

func testAuditPrune(t *testing.T, s AccountStore) {
	ctx := context.Background()
	for i := range 7 {
		if err := s.AppendAudit(ctx, event(audit.LoginSucceeded, "usr_a", "usr_a", base.Add(time.Duration(i)*time.Hour), nil)); err != nil {
			t.Fatal(err)
		}
	}
	cutoff := base.Add(5 * time.Hour) // five are older
	if n, err := s.PruneAudit(ctx, cutoff, 3); err != nil || n != 3 {
		t.Fatalf("first batch: %d %v, want 3", n, err)
	}
	if n, err := s.PruneAudit(ctx, cutoff, 3); err != nil || n != 2 {
		t.Fatalf("second batch: %d %v, want 2", n, err)
	}
	if n, err := s.PruneAudit(ctx, cutoff, 3); err != nil || n != 0 {
		t.Fatalf("nothing left to prune: %d %v", n, err)
	}
	left := events(t, s, audit.Filter{})
	if len(left) != 2 || left[1].At.Before(cutoff) {
		t.Errorf("kept %d events, oldest %v; want the 2 at or after %v", len(left), left[len(left)-1].At, cutoff)
	}
}
