package intake_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
	"github.com/yolda/yolda/internal/store/sqlite"
	"github.com/yolda/yolda/internal/validate"
)

type fixture struct {
	store    *sqlite.Store
	svc      *intake.Service
	customer identity.Principal
	operator identity.Principal
	system   identity.Principal
}

// setup: insurer "wait" makes dispatch wait for cover, "unknown" is not
// configured, any other starts dispatch at once.
func setup(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "y.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	svc := intake.NewService(store, intake.Options{
		KnownInsurer:        func(insurer string) bool { return insurer != "unknown" },
		DispatchBeforeCover: func(insurer string) bool { return insurer != "wait" },
	})
	t.Cleanup(svc.Close)
	accounts, _ := account.NewService(store, &account.Hasher{Memory: 64, Time: 1, Threads: 1})
	c, _ := accounts.Add(ctx, account.NewUser{Username: "ayse", Password: "ayse-password", Role: identity.Customer})
	o, _ := accounts.Add(ctx, account.NewUser{Username: "operator", Password: "operator-password", Role: identity.Operator})
	return &fixture{store: store, svc: svc,
		customer: identity.Principal{UserID: c.ID, Role: c.Role},
		operator: identity.Principal{UserID: o.ID, Role: o.Role},
		system:   identity.Principal{UserID: "system"}}
}

func (f *fixture) create(t *testing.T, insurer string, st intake.ServiceType, destLat float64) intake.Request {
	t.Helper()
	lat, lng, dlng := 41.0, 29.0, 29.0
	sub := intake.Submission{ServiceType: st, Location: &intake.LocationInput{Lat: &lat, Lng: &lng},
		Vehicle: &intake.Vehicle{Plate: "34AB12", Type: "car"}, Policy: &intake.Policy{Insurer: insurer, PolicyNumber: "P-1"},
		Contact: &intake.Contact{Name: "Ayşe", Phone: "+905551112233"}}
	if destLat != 0 {
		sub.Destination = &intake.LocationInput{Lat: &destLat, Lng: &dlng}
	}
	c, err := f.svc.Create(context.Background(), f.customer, sub, "")
	if err != nil {
		t.Fatal(err)
	}
	return c.Request
}

func subjects(t *testing.T, s *sqlite.Store, after int) []string {
	t.Helper()
	msgs, _ := s.PendingOutbox(context.Background(), 1000)
	var out []string
	for _, m := range msgs[after:] {
		out = append(out, m.Subject)
	}
	return out
}

func TestInitialStatusFollowsTheInsurersRule(t *testing.T) {
	f := setup(t)
	waits := f.create(t, "wait", intake.JumpStart, 0)
	early := f.create(t, "anadolu", intake.JumpStart, 0)
	if waits.Status != intake.StatusAwaitingInsurance || early.Status != intake.StatusDispatching {
		t.Fatalf("statuses: %s and %s", waits.Status, early.Status)
	}
	if got := subjects(t, f.store, 0); !slices.Equal(got, []string{
		"jobs.insurance.verify.wait." + waits.ID, "events.request.created", // waits: no dispatch before cover
		"jobs.insurance.verify.anadolu." + early.ID, "jobs.dispatch.request." + early.ID, "events.request.created",
	}) {
		t.Errorf("outbox: %v", got)
	}
}

// An insurer that no configuration knows: the request is accepted and
// dispatched, its insurance goes straight to manual review, and no check
// job is committed for a consumer that does not exist. With no insurers
// configured at all, every insurer is unknown and the rule is the same.
func TestUnknownInsurerGoesToManualReview(t *testing.T) {
	check := func(t *testing.T, f *fixture, insurer string) {
		t.Helper()
		before := len(subjects(t, f.store, 0))
		r := f.create(t, insurer, intake.JumpStart, 0)
		if r.Status != intake.StatusDispatching || r.Insurance.Status != intake.InsuranceManualReview ||
			r.Insurance.Reason == nil || !strings.Contains(*r.Insurance.Reason, insurer) || r.Insurance.CheckedAt == nil {
			t.Errorf("created: status %s, insurance %+v", r.Status, r.Insurance)
		}
		if got := subjects(t, f.store, before); !slices.Equal(got, []string{
			"jobs.dispatch.request." + r.ID, "events.request.created", "events.request.insurance_checked",
		}) {
			t.Errorf("outbox: %v", got)
		}
		// The operator settles it as any manual review.
		got, err := f.svc.DecideInsurance(context.Background(), f.operator, r.ID, intake.InsuranceWaived, "")
		if err != nil || got.Insurance.Status != intake.InsuranceWaived {
			t.Errorf("operator decision: %v %+v", err, got.Insurance)
		}
	}
	t.Run("insurers configured", func(t *testing.T) { check(t, setup(t), "unknown") })
	t.Run("no insurers file", func(t *testing.T) {
		f := setup(t)
		f.svc = intake.NewService(f.store, intake.Options{})
		t.Cleanup(f.svc.Close)
		check(t, f, "anadolu")
	})
}

func TestApprovalStartsDispatch(t *testing.T) {
	f := setup(t)
	r := f.create(t, "wait", intake.Tow, 41.5) // ~55 km tow
	before, _ := f.store.PendingOutbox(context.Background(), 1000)
	receipt := &outbox.Receipt{Consumer: "insurance", MessageID: "msg_1"}
	out := intake.InsuranceOutcome{Status: intake.InsuranceApproved, Reference: "ANA-1",
		Coverage: json.RawMessage(`{"max_tow_km":100,"services":["tow"]}`), Terms: &intake.Coverage{MaxTowKm: 100, Services: []string{"tow"}}}
	got, err := f.svc.RecordInsurance(context.Background(), f.system, r.ID, out, receipt)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != intake.StatusDispatching || got.Insurance.Status != intake.InsuranceApproved || *got.Insurance.Reference != "ANA-1" ||
		got.Insurance.CheckedAt == nil || len(got.Insurance.Flags) != 0 || string(got.Insurance.Coverage) != `{"max_tow_km":100,"services":["tow"]}` {
		t.Errorf("after approval: %+v", got)
	}
	if s := subjects(t, f.store, len(before)); !slices.Equal(s, []string{"events.request.status_changed", "jobs.dispatch.request." + r.ID, "events.request.insurance_checked"}) {
		t.Errorf("outbox after approval: %v", s)
	}
	// The same message again changes nothing (whichever guard sees it first).
	if _, err := f.svc.RecordInsurance(context.Background(), f.system, r.ID, out, receipt); !errors.Is(err, outbox.ErrAlreadyProcessed) && !errors.Is(err, intake.ErrAlreadyDecided) {
		t.Errorf("redelivery: %v", err)
	}
	if again, _ := f.store.Request(context.Background(), r.ID); again.Version != got.Version {
		t.Errorf("redelivery changed the request: version %d -> %d", got.Version, again.Version)
	}
	// Another outcome for a settled question is refused.
	if _, err := f.svc.RecordInsurance(context.Background(), f.system, r.ID, intake.InsuranceOutcome{Status: intake.InsuranceRejected}, nil); !errors.Is(err, intake.ErrAlreadyDecided) {
		t.Errorf("second outcome: %v", err)
	}
}

func TestCoverageFlags(t *testing.T) {
	f := setup(t)
	long := f.create(t, "anadolu", intake.Tow, 42.0) // ~111 km
	got, err := f.svc.RecordInsurance(context.Background(), f.system, long.ID, intake.InsuranceOutcome{
		Status: intake.InsuranceApproved, Terms: &intake.Coverage{MaxTowKm: 10, Services: []string{"jump_start"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Insurance.Flags, []string{intake.FlagServiceNotCovered, intake.FlagTowBeyondCover}) {
		t.Errorf("flags: %v", got.Insurance.Flags)
	}
	stored, _ := f.store.Request(context.Background(), long.ID)
	if !slices.Equal(stored.Insurance.Flags, got.Insurance.Flags) {
		t.Errorf("stored flags: %v", stored.Insurance.Flags)
	}
}

func TestRejection(t *testing.T) {
	f := setup(t)
	waits := f.create(t, "wait", intake.JumpStart, 0)
	got, err := f.svc.RecordInsurance(context.Background(), f.system, waits.ID, intake.InsuranceOutcome{Status: intake.InsuranceRejected, Reason: "lapsed"}, nil)
	if err != nil || got.Status != intake.StatusRejected || *got.Insurance.Reason != "lapsed" {
		t.Fatalf("reject before dispatch: %v %s", err, got.Status)
	}
	// Dispatch already started: the driver is not pulled back, the request is flagged.
	early := f.create(t, "anadolu", intake.JumpStart, 0)
	got, err = f.svc.RecordInsurance(context.Background(), f.system, early.ID, intake.InsuranceOutcome{Status: intake.InsuranceRejected, Reason: "lapsed"}, nil)
	if err != nil || got.Status != intake.StatusDispatching || !slices.Contains(got.Insurance.Flags, intake.FlagRejectedAfterDispatch) {
		t.Errorf("reject after dispatch: %v %s %v", err, got.Status, got.Insurance.Flags)
	}
}

func TestManualReviewThenOperatorDecides(t *testing.T) {
	f := setup(t)
	r := f.create(t, "wait", intake.JumpStart, 0)
	got, err := f.svc.RecordInsurance(context.Background(), f.system, r.ID, intake.InsuranceOutcome{Status: intake.InsuranceManualReview, Reason: "insurer unreachable"}, nil)
	if err != nil || got.Status != intake.StatusAwaitingInsurance || got.Insurance.Status != intake.InsuranceManualReview {
		t.Fatalf("manual review: %v %s %s", err, got.Status, got.Insurance.Status)
	}
	if _, err := f.svc.DecideInsurance(context.Background(), f.customer, r.ID, intake.InsuranceWaived, ""); !errors.Is(err, intake.ErrForbidden) {
		t.Errorf("customer decides: %v", err)
	}
	var fields validate.Errors
	if _, err := f.svc.DecideInsurance(context.Background(), f.operator, r.ID, "approved", ""); !errors.As(err, &fields) {
		t.Errorf("decision approved by hand: %v", err)
	}
	if _, err := f.svc.DecideInsurance(context.Background(), f.operator, r.ID, intake.InsuranceRejected, ""); !errors.As(err, &fields) {
		t.Errorf("rejection without a reason: %v", err)
	}
	got, err = f.svc.DecideInsurance(context.Background(), f.operator, r.ID, intake.InsuranceWaived, "long-standing customer")
	if err != nil || got.Status != intake.StatusDispatching || got.Insurance.Status != intake.InsuranceWaived {
		t.Fatalf("waive: %v %s %s", err, got.Status, got.Insurance.Status)
	}
	if _, err := f.svc.DecideInsurance(context.Background(), f.operator, r.ID, intake.InsuranceRejected, "changed my mind"); !errors.Is(err, intake.ErrConflict) {
		t.Errorf("second decision: %v", err)
	}
}

// Every message of a change carries the version the change stored, so a
// consumer can order a request's messages: creation is 1, and each change
// after it one more, whatever it emits.
func TestMessagesCarryTheVersionTheyAnnounce(t *testing.T) {
	f := setup(t)
	r := f.create(t, "wait", intake.JumpStart, 0)
	approved, err := f.svc.RecordInsurance(context.Background(), f.system, r.ID, intake.InsuranceOutcome{Status: intake.InsuranceApproved}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cancelled, err := f.svc.Cancel(context.Background(), f.customer, r.ID, "found help")
	if err != nil {
		t.Fatal(err)
	}
	if approved.Version != 2 || cancelled.Version != 3 {
		t.Fatalf("versions after approval and cancellation: %d, %d; want 2, 3", approved.Version, cancelled.Version)
	}
	msgs, _ := f.store.PendingOutbox(context.Background(), 1000)
	var got []string
	for _, m := range msgs {
		var env outbox.Envelope
		if err := json.Unmarshal(m.Payload, &env); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s@%d", m.Subject, env.Seq))
	}
	want := []string{
		"jobs.insurance.verify.wait." + r.ID + "@1", "events.request.created@1",
		"events.request.status_changed@2", "jobs.dispatch.request." + r.ID + "@2", "events.request.insurance_checked@2",
		"events.request.status_changed@3",
	}
	if !slices.Equal(got, want) {
		t.Errorf("messages:\n got %v\nwant %v", got, want)
	}
	if stored, _ := f.store.Request(context.Background(), r.ID); stored.Version != cancelled.Version {
		t.Errorf("stored version %d, returned %d", stored.Version, cancelled.Version)
	}
}
