package account

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/audit"
	"github.com/yolda/yolda/internal/id"
	"github.com/yolda/yolda/internal/identity"
)

// A token's claims are checked against the account as it is now: a ghost,
// a disabled account, a changed role and a revoked token are refused, by
// this process at once and by another within the cache's lifetime.
func TestResolve(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	store := newMemStore()
	rec := &trail{}
	here := newTestService(t, store, c, WithAudit(rec), WithPrincipalCache(5*time.Second))
	// Another process over the same database.
	there := newTestService(t, store, c, WithPrincipalCache(5*time.Second))

	ayse := mustAdd(t, here, "ayse", identity.Customer)
	claim := Principal(ayse)
	for name, svc := range map[string]*Service{"here": here, "there": there} {
		got, err := svc.Resolve(ctx, claim)
		if err != nil || got != claim {
			t.Fatalf("%s: fresh token: %+v %v", name, got, err)
		}
	}

	refused := func(svc *Service, p identity.Principal, reason string) {
		t.Helper()
		_, err := svc.Resolve(ctx, p)
		if !errors.Is(err, ErrTokenRefused) || !contains(err.Error(), reason) {
			t.Errorf("err = %v, want ErrTokenRefused (%s)", err, reason)
		}
	}
	// A user that never existed (a forged or leftover token): refused, not
	// served (it would fail later on a foreign key).
	refused(here, identity.Principal{UserID: id.New("usr", c.Now()), Role: identity.Customer}, "unknown_user")
	// A role the account does not have.
	refused(here, identity.Principal{UserID: ayse.ID, Role: identity.Admin}, "role_changed")

	// Revocation: this process refuses at once; the other one within 5s.
	if _, err := here.RevokeTokens(ctx, rootCLI, ayse.ID); err != nil {
		t.Fatal(err)
	}
	refused(here, claim, "revoked")
	if _, err := there.Resolve(ctx, claim); err != nil {
		t.Errorf("the other process refused before its cache expired (fine, but unexpected): %v", err)
	}
	c.Add(5 * time.Second)
	refused(there, claim, "revoked")
	fresh := claim
	fresh.TokenVersion = 1
	if _, err := there.Resolve(ctx, fresh); err != nil {
		t.Errorf("a token of the new version: %v", err)
	}

	// Disabled, then enabled: the old token stays dead, a new one works.
	if _, err := here.SetDisabled(ctx, rootCLI, ayse.ID, true, "lost phone"); err != nil {
		t.Fatal(err)
	}
	refused(here, fresh, "disabled")
	if _, err := here.SetDisabled(ctx, rootCLI, ayse.ID, false, ""); err != nil {
		t.Fatal(err)
	}
	refused(here, fresh, "revoked")
	fresh.TokenVersion = 2
	if _, err := here.Resolve(ctx, fresh); err != nil {
		t.Errorf("after enabling, a new token: %v", err)
	}

	// A role change takes effect: the operator token is refused, and the
	// principal served carries the stored role, never the claimed one.
	if _, err := here.SetRole(ctx, rootCLI, ayse.ID, identity.Operator); err != nil {
		t.Fatal(err)
	}
	refused(here, fresh, "revoked")

	// Each refusal was audited once per account and reason per minute.
	counts := map[string]int{}
	for _, e := range rec.all() {
		if e.Action == audit.TokenRefused {
			counts[e.Details["reason"]]++
		}
	}
	if counts["unknown_user"] != 1 || counts["revoked"] != 1 || counts["role_changed"] != 1 || counts["disabled"] != 1 {
		t.Errorf("token refusals audited: %v", counts)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
