package account

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/yolda/yolda/internal/audit"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/validate"
)

// memStore is an in-memory Store for the domain tests; the SQL stores
// pass internal/store/storetest.
type memStore struct {
	mu     sync.Mutex
	users  map[string]User // by username
	events []audit.Event
}

func newMemStore() *memStore { return &memStore{users: map[string]User{}} }

func (m *memStore) CreateUser(_ context.Context, u User, events ...audit.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.users[u.Username]; ok {
		return ErrUsernameTaken
	}
	if u.Driver != nil && u.Driver.ProviderCode != "" && u.Driver.ProviderCode != "acme-tow" {
		return fleet.ErrUnknownProvider
	}
	m.users[u.Username] = u
	m.events = append(m.events, events...)
	return nil
}

func (m *memStore) UserByUsername(_ context.Context, name string) (User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[name]
	if !ok {
		return User{}, ErrNotFound
	}
	return u, nil
}

func (m *memStore) UserByID(_ context.Context, id string) (User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, u := range m.users {
		if u.ID == id {
			return u, nil
		}
	}
	return User{}, ErrNotFound
}

func (m *memStore) Users(_ context.Context, f UserFilter) ([]User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []User
	for _, u := range m.users {
		if (f.Role == "" || u.Role == f.Role) && (f.Disabled == nil || u.Disabled == *f.Disabled) && (f.Before == "" || u.ID < f.Before) {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(a, b User) int { return strings.Compare(b.ID, a.ID) })
	return out[:min(len(out), f.Limit)], nil
}

func (m *memStore) UpdateUser(_ context.Context, id string, fn func(*User) ([]audit.Event, error)) (User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, u := range m.users {
		if u.ID != id {
			continue
		}
		events, err := fn(&u)
		if err != nil {
			return User{}, err
		}
		m.users[name] = u
		m.events = append(m.events, events...)
		return u, nil
	}
	return User{}, ErrNotFound
}

func (m *memStore) actions() []audit.Action {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []audit.Action
	for _, e := range m.events {
		out = append(out, e.Action)
	}
	return out
}

func TestHasher(t *testing.T) {
	h := &Hasher{Memory: 64, Time: 1, Threads: 1}
	enc, err := h.Hash("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("encoding %q", enc)
	}
	if ok, err := h.Verify(enc, "correct horse"); !ok || err != nil {
		t.Errorf("right password: %v %v", ok, err)
	}
	if ok, _ := h.Verify(enc, "correct horsE"); ok {
		t.Error("wrong password accepted")
	}
	again, _ := h.Hash("correct horse")
	if again == enc {
		t.Error("two hashes of one password are equal: salt is not random")
	}
	// A hash made with other parameters still verifies: they travel in it.
	strong := &Hasher{Memory: 128, Time: 2, Threads: 1}
	if ok, _ := h.Verify(mustHash(t, strong, "pw-12345"), "pw-12345"); !ok {
		t.Error("hash with other parameters does not verify")
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA", "$argon2id$v=19$m=x$a$b", enc[:len(enc)-3] + "!!!"} {
		if _, err := h.Verify(bad, "x"); err == nil {
			t.Errorf("malformed %q verified without error", bad)
		}
	}
}

func mustHash(t *testing.T, h *Hasher, pw string) string {
	t.Helper()
	s, err := h.Hash(pw)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAddAndAuthenticate(t *testing.T) {
	svc, err := NewService(newMemStore(), &Hasher{Memory: 64, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	u, err := svc.Add(ctx, NewUser{Username: " Ayse ", Password: "ayse-password", Role: identity.Customer})
	if err != nil {
		t.Fatal(err)
	}
	if u.Username != "ayse" || !strings.HasPrefix(u.ID, "usr_") || u.PasswordHash == "ayse-password" {
		t.Errorf("added %+v", u)
	}
	if _, err := svc.Add(ctx, NewUser{Username: "ayse", Password: "another-pw", Role: identity.Customer}); !errors.Is(err, ErrUsernameTaken) {
		t.Errorf("duplicate: %v", err)
	}
	got, err := svc.Login(ctx, LoginAttempt{Username: "AYSE", Password: "ayse-password", Address: "192.0.2.1"})
	if err != nil || got.ID != u.ID {
		t.Errorf("login: %v %+v", err, got)
	}
	for _, c := range [][2]string{{"ayse", "wrong-password"}, {"nobody", "ayse-password"}} {
		if _, err := svc.Login(ctx, LoginAttempt{Username: c[0], Password: c[1], Address: "192.0.2.1"}); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("%v: err = %v, want ErrBadCredentials", c, err)
		}
	}
	d, err := svc.Add(ctx, NewUser{Username: "driver1", Password: "driver-pw", Role: identity.Driver, VehiclePlate: "34tow1", Capabilities: []string{"tow", " jump_start"}})
	if err != nil || d.Driver == nil || d.Driver.VehiclePlate != "34TOW1" || len(d.Driver.Capabilities) != 2 {
		t.Errorf("driver: %v %+v", err, d.Driver)
	}
	cases := map[string]NewUser{
		"username":      {Username: "a", Password: "long-enough", Role: identity.Customer},
		"password":      {Username: "shortpw", Password: "short", Role: identity.Customer},
		"role":          {Username: "norole", Password: "long-enough", Role: "pilot"},
		"capabilities":  {Username: "driver2", Password: "long-enough", Role: identity.Driver, VehiclePlate: "34X1", Capabilities: []string{"teleport"}},
		"vehicle_plate": {Username: "driver3", Password: "long-enough", Role: identity.Driver, Capabilities: []string{"tow"}},
		"vehicle_kind":  {Username: "driver4", Password: "long-enough", Role: identity.Driver, VehiclePlate: "34X4", Capabilities: []string{"tow"}, VehicleKind: "bicycle"},
		"provider":      {Username: "driver5", Password: "long-enough", Role: identity.Driver, VehiclePlate: "34X5", Capabilities: []string{"tow"}, Provider: "nope"},
	}
	// A van cannot tow: the profile must say what the driver can do.
	_, err = svc.Add(ctx, NewUser{Username: "driver6", Password: "long-enough", Role: identity.Driver, VehiclePlate: "34X6",
		Capabilities: []string{"tow", "lockout"}, VehicleKind: "service_van"})
	var verrs validate.Errors
	if !errors.As(err, &verrs) || !hasField(verrs, "capabilities") {
		t.Errorf("van with tow: err = %v", err)
	}
	if _, err := svc.Add(ctx, NewUser{Username: "cust2", Password: "long-enough", Role: identity.Customer, Provider: "acme-tow"}); !errors.As(err, &verrs) || !hasField(verrs, "role") {
		t.Errorf("customer with a provider: err = %v", err)
	}
	van, err := svc.Add(ctx, NewUser{Username: "driver7", Password: "long-enough", Role: identity.Driver, VehiclePlate: "34x7",
		Capabilities: []string{"lockout"}, Provider: "acme-tow"})
	if err != nil || van.Driver.VehicleKind != fleet.ServiceVan || van.Driver.ProviderCode != "acme-tow" {
		t.Errorf("van: %v %+v", err, van.Driver)
	}
	if d.Driver != nil && d.Driver.VehicleKind != fleet.TowTruck {
		t.Errorf("a driver who tows defaults to a tow truck: %+v", d.Driver)
	}
	for field, n := range cases {
		_, err := svc.Add(ctx, n)
		var errs validate.Errors
		if !errors.As(err, &errs) || !hasField(errs, field) {
			t.Errorf("%s: err = %v", field, err)
		}
	}
}

func hasField(errs validate.Errors, field string) bool {
	for _, e := range errs {
		if e.Field == field {
			return true
		}
	}
	return false
}
