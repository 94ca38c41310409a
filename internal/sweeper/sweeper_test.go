package sweeper_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
	"github.com/yolda/yolda/internal/store/sqlite"
	"github.com/yolda/yolda/internal/sweeper"
)

func TestSweepOnceNudgesOnlyStaleRequests(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "y.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	accounts, _ := account.NewService(store, &account.Hasher{Memory: 64, Time: 1, Threads: 1})
	u, _ := accounts.Add(ctx, account.NewUser{Username: "ayse", Password: "ayse-password", Role: identity.Customer})
	clock := time.Now().Add(-time.Hour)
	svc := intake.NewService(store, intake.Options{Now: func() time.Time { return clock }, KnownInsurer: func(string) bool { return true }})
	defer svc.Close()
	lat, lng := 41.0, 29.0
	sub := intake.Submission{ServiceType: intake.Lockout, Location: &intake.LocationInput{Lat: &lat, Lng: &lng},
		Vehicle: &intake.Vehicle{Plate: "34AB12", Type: "car"}, Policy: &intake.Policy{Insurer: "axa", PolicyNumber: "P-1"},
		Contact: &intake.Contact{Name: "Ayşe", Phone: "+905551112233"}}
	old, err := svc.Create(ctx, identity.Principal{UserID: u.ID, Role: u.Role}, sub, "")
	if err != nil {
		t.Fatal(err)
	}
	clock = time.Now()
	if _, err := svc.Create(ctx, identity.Principal{UserID: u.ID, Role: u.Role}, sub, ""); err != nil {
		t.Fatal(err)
	}
	before, _ := store.PendingOutbox(ctx, 100)

	sw := sweeper.New(store, svc.Jobs, sweeper.DefaultRules, time.Second, nil, nil)
	got, err := sw.SweepOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got[intake.StatusDispatching] != 1 {
		t.Fatalf("nudged %v, want the one old dispatching request", got)
	}
	after, _ := store.PendingOutbox(ctx, 100)
	// A dispatching request whose insurance is still pending gets its
	// insurance check and its dispatch again.
	if len(after)-len(before) != 2 {
		t.Fatalf("nudge committed %d messages, want 2", len(after)-len(before))
	}
	subjects := map[string]bool{}
	for _, m := range after[len(before):] {
		subjects[m.Subject] = true
		if !contains(m.Payload, old.Request.ID) {
			t.Errorf("nudge message is not about the stale request: %s", m.Payload)
		}
	}
	if !subjects[outbox.InsuranceVerifySubject("axa", old.Request.ID)] || !subjects[outbox.DispatchRequestSubject(old.Request.ID)] {
		t.Errorf("nudge subjects: %v", subjects)
	}
	if again, _ := sw.SweepOnce(ctx); again[intake.StatusDispatching] != 0 {
		t.Errorf("nudged again at once: %v", again)
	}
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }
