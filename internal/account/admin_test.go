package account

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/yolda/yolda/internal/audit"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/validate"
)

func TestAdminOperations(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	store := newMemStore()
	svc := newTestService(t, store, c)
	admin := mustAdd(t, svc, "boss", identity.Admin)
	ayse := mustAdd(t, svc, "ayse", identity.Customer)
	op := mustAdd(t, svc, "ops", identity.Operator)
	who := Principal(admin)

	// Only admins manage accounts.
	for _, caller := range []identity.Principal{Principal(op), Principal(ayse), {}} {
		if _, err := svc.SetRole(ctx, caller, ayse.ID, identity.Admin); !errors.Is(err, ErrForbidden) {
			t.Errorf("%s sets a role: %v", caller.Role, err)
		}
		if _, err := svc.ListUsers(ctx, caller, UserFilter{}); !errors.Is(err, ErrForbidden) {
			t.Errorf("%s lists users: %v", caller.Role, err)
		}
		if _, err := svc.CreateUser(ctx, caller, NewUser{Username: "x" + string(caller.Role), Password: "long-enough", Role: identity.Admin}); !errors.Is(err, ErrForbidden) {
			t.Errorf("%s creates an admin: %v", caller.Role, err)
		}
	}

	u, err := svc.SetRole(ctx, who, ayse.ID, identity.Operator)
	if err != nil || u.Role != identity.Operator || u.TokenVersion != 1 || !u.UpdatedAt.Equal(c.Now()) {
		t.Fatalf("set role: %+v %v", u, err)
	}
	// Same role again: nothing changes, nothing is recorded.
	before := len(store.actions())
	if u, err := svc.SetRole(ctx, who, ayse.ID, identity.Operator); err != nil || u.TokenVersion != 1 || len(store.actions()) != before {
		t.Errorf("no-op role change: %+v %v", u, err)
	}
	if _, err := svc.SetRole(ctx, who, ayse.ID, identity.Driver); !isField(err, "role") {
		t.Errorf("to driver without a vehicle: %v", err)
	}
	if _, err := svc.SetRole(ctx, who, ayse.ID, "pilot"); !isField(err, "role") {
		t.Errorf("unknown role: %v", err)
	}
	// An admin cannot demote or disable itself (another admin or the CLI can).
	if _, err := svc.SetRole(ctx, who, admin.ID, identity.Customer); !errors.Is(err, ErrConflict) {
		t.Errorf("self-demotion: %v", err)
	}
	if _, err := svc.SetDisabled(ctx, who, admin.ID, true, ""); !errors.Is(err, ErrConflict) {
		t.Errorf("self-disable: %v", err)
	}
	if _, err := svc.SetRole(ctx, rootCLI, admin.ID, identity.Operator); err != nil {
		t.Errorf("the CLI demotes an admin: %v", err)
	}

	// Disabled accounts cannot log in (and say so no differently).
	if _, err := svc.SetDisabled(ctx, rootCLI, ayse.ID, true, "left the company"); err != nil {
		t.Fatal(err)
	}
	if err := login(svc, "ayse", "ayse-password", "192.0.2.1"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("disabled login: %v", err)
	}
	if _, err := svc.SetDisabled(ctx, rootCLI, ayse.ID, false, ""); err != nil {
		t.Fatal(err)
	}
	if err := login(svc, "ayse", "ayse-password", "192.0.2.1"); err != nil {
		t.Errorf("enabled login: %v", err)
	}

	// A reset password replaces the old one and revokes the tokens.
	if _, err := svc.ResetPassword(ctx, rootCLI, ayse.ID, "short"); !isField(err, "password") {
		t.Errorf("short password: %v", err)
	}
	u, err = svc.ResetPassword(ctx, rootCLI, ayse.ID, "a-new-password")
	if err != nil {
		t.Fatal(err)
	}
	if err := login(svc, "ayse", "ayse-password", "192.0.2.1"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("old password after reset: %v", err)
	}
	if err := login(svc, "ayse", "a-new-password", "192.0.2.1"); err != nil {
		t.Errorf("new password: %v", err)
	}
	if u.TokenVersion != 3 { // role, disable, reset
		t.Errorf("token version %d after three revoking changes", u.TokenVersion)
	}
	if _, err := svc.RevokeTokens(ctx, rootCLI, "usr_nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}

	// Lookups by id or username; lists filter and page.
	for _, key := range []string{ayse.ID, "AYSE"} {
		if got, err := svc.Lookup(ctx, rootCLI, key); err != nil || got.ID != ayse.ID {
			t.Errorf("lookup %s: %+v %v", key, got, err)
		}
	}
	page, err := svc.ListUsers(ctx, rootCLI, UserFilter{Limit: 2})
	if err != nil || len(page.Items) != 2 || page.NextCursor != page.Items[1].ID {
		t.Errorf("first page: %+v %v", page, err)
	}

	want := []audit.Action{
		audit.UserCreated, audit.UserCreated, audit.UserCreated,
		audit.UserRoleChanged, audit.UserRoleChanged, audit.UserDisabled, audit.UserEnabled, audit.UserPasswordReset,
	}
	if got := store.actions(); !slices.Equal(got, want) {
		t.Errorf("trail %v, want %v", got, want)
	}
	for _, e := range store.events {
		if e.ActorID == "" {
			t.Errorf("event without an actor: %+v", e)
		}
	}
}

func isField(err error, field string) bool {
	var errs validate.Errors
	if !errors.As(err, &errs) {
		return false
	}
	for _, e := range errs {
		if e.Field == field {
			return true
		}
	}
	return false
}
