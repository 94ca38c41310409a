package fleet_test

import (
	"context"
	"slices"
	"testing"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
)

// TestReconcileFreesADriverTheIndexKeptBusy: the process that completed a
// job died before telling the index (no Refresh): the driver, free in the
// database, stays busy in the index and is never offered a job, until
// Reconcile puts the index right. A state the index holds that is newer
// than what Reconcile read is left alone.
func TestReconcileFreesADriverTheIndexKeptBusy(t *testing.T) {
	ctx := context.Background()
	b := setup(t, nil)
	d := b.driver(t, "truck", "", "tow")
	other := b.driver(t, "other", "", "tow")
	b.online(t, d, north(1))
	b.online(t, other, north(2))
	cust, err := b.accounts.Add(ctx, account.NewUser{Username: "ayse", Password: "ayse-password", Role: identity.Customer})
	if err != nil {
		t.Fatal(err)
	}
	req := towAt(fatih, cust.ID, intake.StatusAssigned)
	req.Assignment = &intake.Assignment{DriverID: d.UserID, DriverName: "truck", VehiclePlate: "34TRUCK", AssignedAt: now}
	if err := b.store.CreateRequests(ctx, []*intake.Creation{{Request: req}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.Refresh(ctx, d.UserID); err != nil {
		t.Fatal(err)
	}
	// Completed; the process dies before its Refresh.
	if _, err := b.store.UpdateRequest(ctx, req.ID, func(r *intake.Request) (intake.Change, error) {
		r.Status = intake.StatusCompleted
		r.Advance(now)
		return intake.Change{}, nil
	}); err != nil {
		t.Fatal(err)
	}
	// The other driver's state in the index is newer than the store's (as
	// if refreshed after Reconcile read its page): it stays as it is.
	newer := must(b.store.Driver(ctx, other.UserID)).State()
	newer.Version += 10
	newer.Busy = true
	if err := b.index.SetState(ctx, other.UserID, newer); err != nil {
		t.Fatal(err)
	}
	towers := func() []string {
		got, err := b.svc.Candidates(ctx, fleet.CandidateQuery{At: fatih, Service: intake.Tow, RadiusKm: 5, Limit: 5})
		if err != nil {
			t.Fatal(err)
		}
		return ids(got)
	}
	if c := towers(); len(c) != 0 {
		t.Fatalf("candidates before reconciling: %v (the scenario needs both busy in the index)", c)
	}
	n, err := b.svc.Reconcile(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Reconcile = %d, %v; want 1 driver put right", n, err)
	}
	if c := towers(); !slices.Equal(c, []string{d.UserID}) {
		t.Errorf("candidates after reconciling: %v, want the freed driver only", c)
	}
	if n, err := b.svc.Reconcile(ctx); err != nil || n != 0 {
		t.Errorf("Reconcile again = %d, %v; want nothing to do", n, err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
