package account

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/audit"
	"github.com/yolda/yolda/internal/identity"
)

func login(svc *Service, user, pw, addr string) error {
	_, err := svc.Login(context.Background(), LoginAttempt{Username: user, Password: pw, Address: addr})
	return err
}

func retryAfter(t *testing.T, err error) (time.Duration, string) {
	t.Helper()
	var te *ThrottledError
	if !errors.As(err, &te) || !errors.Is(err, ErrThrottled) {
		t.Fatalf("err = %v, want a *ThrottledError", err)
	}
	return te.RetryAfter, te.Scope
}

// One address guessing at one account waits longer and longer; nothing is
// ever locked for good, and a correct password resets the budget.
func TestBackoffPerAccountAndAddress(t *testing.T) {
	c := newClock()
	rec := &trail{}
	svc := newTestService(t, newMemStore(), c, WithAudit(rec), WithBackoff(BackoffRules{
		PairFree: 3, AccountFree: 100, Base: time.Second, PairMax: 8 * time.Second, AccountMax: time.Minute,
		Forget: time.Hour, Remember: time.Hour, MaxEntries: 1000,
	}))
	mustAdd(t, svc, "ayse", identity.Customer)
	const attacker = "198.51.100.9"
	for i := range 3 {
		if err := login(svc, "ayse", "guess", attacker); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("free failure %d: %v", i, err)
		}
	}
	// The fourth failure starts the back-off: 1s, then 2s, 4s, 8s, 8s.
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		if err := login(svc, "ayse", "guess", attacker); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("checked failure %d: %v", i, err)
		}
		wait, scope := retryAfter(t, login(svc, "ayse", "ayse-password", attacker))
		if wait != want || scope != "address" {
			t.Fatalf("after failure %d: wait %s (%s), want %s", 4+i, wait, scope, want)
		}
		// Refused attempts neither count nor extend the wait.
		for range 5 {
			login(svc, "ayse", "guess", attacker)
		}
		c.Add(want / 2)
		if w, _ := retryAfter(t, login(svc, "ayse", "guess", attacker)); w != want/2 {
			t.Fatalf("refused attempts moved the wait: %s, want %s", w, want/2)
		}
		c.Add(want / 2)
	}
	// The owner from home is not affected at all: another address.
	if err := login(svc, "ayse", "ayse-password", "203.0.113.5"); err != nil {
		t.Fatalf("owner from a fresh address: %v", err)
	}
	// The failures were audited, with the back-off they started, and
	// without the attempted password.
	var failed, backoffs int
	for _, e := range rec.all() {
		if e.Action == audit.LoginFailed {
			failed++
			if e.Details["backoff"] != "" {
				backoffs++
			}
			if e.Details["reason"] != "password" || e.Target == "" {
				t.Errorf("failed-login event %+v", e)
			}
		}
		for _, v := range e.Details {
			if v == "guess" || v == "ayse-password" {
				t.Errorf("a password reached the audit trail: %+v", e)
			}
		}
	}
	if failed != 8 || backoffs != 5 {
		t.Errorf("%d failed-login events (%d with a back-off), want 8 (5)", failed, backoffs)
	}
	// A correct password at the attacker's address, once allowed, resets it.
	if err := login(svc, "ayse", "ayse-password", attacker); err != nil {
		t.Fatalf("correct password after the wait: %v", err)
	}
	for range 3 {
		if err := login(svc, "ayse", "guess", attacker); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("budget not reset by success: %v", err)
		}
	}
}

// A flood from many addresses slows the account down, but only so far:
// the owner from a fresh address waits at most AccountMax, and from an
// address it logged in from before not at all.
func TestBackoffPerAccountFromEverywhere(t *testing.T) {
	c := newClock()
	svc := newTestService(t, newMemStore(), c, WithBackoff(BackoffRules{
		PairFree: 3, AccountFree: 10, Base: time.Second, PairMax: time.Hour, AccountMax: 30 * time.Second,
		Forget: time.Hour, Remember: 30 * 24 * time.Hour, MaxEntries: 10_000,
	}))
	mustAdd(t, svc, "ayse", identity.Customer)
	const home = "203.0.113.5"
	if err := login(svc, "ayse", "ayse-password", home); err != nil {
		t.Fatal(err)
	}
	// A botnet: every address fails once, whenever the account lets it.
	longest := time.Duration(0)
	for i := range 200 {
		addr := "198.51.100." + itoa3(i)
		err := login(svc, "ayse", "guess", addr)
		if errors.Is(err, ErrThrottled) {
			w, scope := retryAfter(t, err)
			if scope != "account" {
				t.Fatalf("bot %d refused by %s", i, scope)
			}
			longest = max(longest, w)
			c.Add(w) // the bot waits exactly as long as it is told
			if err := login(svc, "ayse", "guess", addr); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("bot %d after waiting: %v", i, err)
			}
		}
	}
	if longest != 30*time.Second {
		t.Errorf("longest account-wide wait %s, want the 30s ceiling", longest)
	}
	// The owner, from its usual address, is let in at once.
	if err := login(svc, "ayse", "ayse-password", home); err != nil {
		t.Errorf("owner from a known address during the flood: %v", err)
	}
	// Another flood round, then the owner from a fresh address: refused
	// for at most the ceiling, then let in.
	for i := range 30 {
		addr := "198.51.101." + itoa3(i)
		if err := login(svc, "ayse", "guess", addr); errors.Is(err, ErrThrottled) {
			w, _ := retryAfter(t, err)
			c.Add(w)
			login(svc, "ayse", "guess", addr)
		}
	}
	err := login(svc, "ayse", "ayse-password", "192.0.2.200")
	if err != nil {
		w, scope := retryAfter(t, err)
		if scope != "account" || w > 30*time.Second {
			t.Fatalf("fresh address waits %s (%s)", w, scope)
		}
		c.Add(w)
		if err := login(svc, "ayse", "ayse-password", "192.0.2.200"); err != nil {
			t.Errorf("owner from a fresh address after the wait: %v", err)
		}
	}
}

// An unknown username is throttled like a known one: the back-off does
// not tell which accounts exist.
func TestBackoffForUnknownUsers(t *testing.T) {
	c := newClock()
	svc := newTestService(t, newMemStore(), c, WithBackoff(BackoffRules{
		PairFree: 2, AccountFree: 100, Base: time.Second, PairMax: time.Minute, AccountMax: time.Minute, Forget: time.Hour, Remember: time.Hour, MaxEntries: 100,
	}))
	mustAdd(t, svc, "ayse", identity.Customer)
	for _, name := range []string{"ayse", "nobody"} {
		for range 3 {
			login(svc, name, "guess", "198.51.100.1")
		}
		if w, _ := retryAfter(t, login(svc, name, "guess", "198.51.100.1")); w != time.Second {
			t.Errorf("%s: wait %s", name, w)
		}
	}
	// Forgotten after Forget.
	c.Add(2 * time.Hour)
	if err := login(svc, "nobody", "guess", "198.51.100.1"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("after Forget: %v", err)
	}
}

// The state stays bounded under a flood of made-up names.
func TestBackoffIsBounded(t *testing.T) {
	b := newBackoff(BackoffRules{PairFree: 1, AccountFree: 1, Base: time.Second, PairMax: time.Minute, AccountMax: time.Minute, Forget: time.Hour, Remember: time.Hour, MaxEntries: 500})
	now := time.Now()
	for i := range 10_000 {
		b.failure("user"+itoa3(i), "198.51.100.1", now)
	}
	if n := len(b.entries); n > 500 {
		t.Errorf("%d entries, bound 500", n)
	}
}

func itoa3(i int) string {
	return string([]byte{byte('0' + i/100%10), byte('0' + i/10%10), byte('0' + i%10)})
}
