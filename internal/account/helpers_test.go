package account

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/audit"
	"github.com/yolda/yolda/internal/identity"
)

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// trail is an audit.Recorder that keeps what it is given.
type trail struct {
	mu     sync.Mutex
	events []audit.Event
}

func (r *trail) Record(_ context.Context, e audit.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *trail) all() []audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]audit.Event(nil), r.events...)
}

var fastHasher = &Hasher{Memory: 64, Time: 1, Threads: 1}

var rootCLI = identity.Principal{UserID: "cli:root", Role: identity.Admin}

func newTestService(t *testing.T, store Store, c *clock, opts ...Option) *Service {
	t.Helper()
	svc, err := NewService(store, fastHasher, append([]Option{WithClock(c.Now), WithMemoryRelease(func() {})}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func mustAdd(t *testing.T, svc *Service, username string, role identity.Role) User {
	t.Helper()
	n := NewUser{Username: username, Password: username + "-password", Role: role}
	if role == identity.Driver {
		n.VehiclePlate, n.Capabilities = "34AB123", []string{"tow"}
	}
	u, err := svc.CreateUser(context.Background(), rootCLI, n)
	if err != nil {
		t.Fatalf("add %s: %v", username, err)
	}
	return u
}
