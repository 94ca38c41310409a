package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/dispatch"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/id"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
)

// DispatchStore is what the dispatch cases exercise: the dispatch port,
// with the ports that make drivers, requests and the outbox around it.
type DispatchStore interface {
	MessagingStore
	fleet.Store
	dispatch.Store
}

// RunDispatch runs the dispatch store cases. open must return a new empty
// store for each call.
func RunDispatch(t *testing.T, open func(t *testing.T) DispatchStore) {
	t.Run("Decisions", func(t *testing.T) { testDecisions(t, open(t)) })
	t.Run("DecisionReceipts", func(t *testing.T) { testDecisionReceipts(t, open(t)) })
	t.Run("AcceptAndAssign", func(t *testing.T) { testAssign(t, open(t)) })
	t.Run("LeavingDispatchingWithdrawsOffers", func(t *testing.T) { testWithdrawTrigger(t, open(t)) })
	t.Run("CloseOffer", func(t *testing.T) { testCloseOffer(t, open(t)) })
	t.Run("ExpireOffers", func(t *testing.T) { testExpireOffers(t, open(t)) })
	t.Run("ExpireConcurrent", func(t *testing.T) { testExpireConcurrent(t, open(t)) })
	t.Run("AssignConcurrent", func(t *testing.T) { testAssignConcurrent(t, open(t)) })
	t.Run("FreeDriversOfManyCandidates", func(t *testing.T) { testFreeDriversMany(t, open(t)) })
	t.Run("SweeperLeavesOpenOffersAlone", func(t *testing.T) { testSweeperLeavesOpenOffers(t, open(t)) })
}

// testSweeperLeavesOpenOffers: a request dispatching for long through
// offer after offer (an offer does not change the request) has no job in
// the broker while an offer is open, and has lost nothing: it is not due
// for the sweeper until the offer is past its deadline or has ended.
func testSweeperLeavesOpenOffers(t *testing.T, s DispatchStore) {
	ctx := context.Background()
	f := newDispatchFixture(t, s, 1)
	reqs := f.dispatching(t, 2)
	at := base.Add(10 * time.Minute)
	o := offerDecision(reqs[0], 0, f.drivers[0].ID, at, "")
	f.commit(t, o)
	drainOutbox(t, s)
	dueAt := func(now time.Time) []string {
		t.Helper()
		due, err := s.DueRequests(ctx, intake.StatusDispatching, now.Add(-2*time.Minute), now, 10)
		if err != nil {
			t.Fatalf("DueRequests: %v", err)
		}
		var ids []string
		for _, d := range due {
			ids = append(ids, d.Request.ID)
		}
		slices.Sort(ids)
		return ids
	}
	if got := dueAt(at.Add(time.Second)); !slices.Equal(got, []string{reqs[1].ID}) {
		t.Errorf("due with an open offer = %v, want only the request without one (%s)", got, reqs[1].ID)
	}
	if got := dueAt(o.Offer.ExpiresAt.Add(time.Second)); !slices.Equal(got, sortedIDs(reqs[0].ID, reqs[1].ID)) {
		t.Errorf("due once the offer is past its deadline = %v, want both", got)
	}
	if _, err := s.CloseOffer(ctx, o.Offer.ID, func(o *dispatch.Offer, _ *intake.Request) ([]outbox.Message, error) {
		o.Status, o.DecidedAt = dispatch.OfferDeclined, &at
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := dueAt(at.Add(time.Second)); !slices.Equal(got, sortedIDs(reqs[0].ID, reqs[1].ID)) {
		t.Errorf("due once the offer ended = %v, want both", got)
	}
}

// testFreeDriversMany: a batch of requests at a peak, each having asked
// the index for hundreds of candidates, checks tens of thousands of
// drivers at once (more than SQLite's 32766 bound variables).
func testFreeDriversMany(t *testing.T, s DispatchStore) {
	f := newDispatchFixture(t, s, 3)
	ids := make([]string, 0, 40_000)
	for i := range cap(ids) - len(f.drivers) {
		ids = append(ids, fmt.Sprintf("usr_%026d", i))
	}
	for _, d := range f.drivers {
		ids = append(ids, d.ID)
	}
	free, err := s.FreeDrivers(context.Background(), ids)
	if err != nil {
		t.Fatalf("FreeDrivers of %d ids: %v", len(ids), err)
	}
	slices.Sort(free)
	if want := sortedIDs(f.drivers[0].ID, f.drivers[1].ID, f.drivers[2].ID); !slices.Equal(free, want) {
		t.Errorf("FreeDrivers = %v, want %v", free, want)
	}
}

// dispatchFixture is a customer and drivers around Fatih, online.
type dispatchFixture struct {
	s        DispatchStore
	customer account.User
	drivers  []account.User
}

func newDispatchFixture(t testing.TB, s DispatchStore, drivers int) *dispatchFixture {
	t.Helper()
	f := &dispatchFixture{s: s, customer: addUser(t, s, "customer1", identity.Customer)}
	for i := range drivers {
		u := addDriver(t, s, fmt.Sprintf("drv%03d", i), fleet.TowTruck, "", intake.Tow, intake.JumpStart)
		if _, err := s.SetAvailability(context.Background(), u.ID, fleet.Online, base); err != nil {
			t.Fatalf("SetAvailability: %v", err)
		}
		f.drivers = append(f.drivers, u)
	}
	return f
}

// dispatching creates n requests in dispatching, each with its dispatch
// job in the outbox, and returns them as stored.
func (f *dispatchFixture) dispatching(t testing.TB, n int) []intake.Request {
	t.Helper()
	var cs []*intake.Creation
	for i := range n {
		r := newRequest(f.customer.ID, time.Duration(i)*time.Millisecond, "İstanbul", "anadolu", intake.JumpStart)
		r.Status = intake.StatusDispatching
		r.Timeline = append(r.Timeline, intake.TimelineEntry{Status: intake.StatusDispatching, At: r.CreatedAt, ActorID: r.OwnerID})
		job, err := intake.NewDispatchJob(r, r.CreatedAt, outbox.Actor{ID: r.OwnerID})
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, &intake.Creation{Request: r, Outbox: []outbox.Message{job}})
	}
	mustCreate(t, f.s, cs...)
	out := make([]intake.Request, n)
	for i, c := range cs {
		out[i] = f.request(t, c.Request.ID)
	}
	return out
}

func (f *dispatchFixture) request(t testing.TB, id string) intake.Request {
	t.Helper()
	r, err := f.s.Request(context.Background(), id)
	if err != nil {
		t.Fatalf("Request(%s): %v", id, err)
	}
	return r
}

func (f *dispatchFixture) snapshot(t *testing.T, id string) dispatch.Snapshot {
	t.Helper()
	snaps, err := f.s.Snapshots(context.Background(), []string{id})
	if err != nil || len(snaps) != 1 {
		t.Fatalf("Snapshots(%s) = %d, %v", id, len(snaps), err)
	}
	return snaps[0]
}

// offerDecision offers request r (as read) to driver d, with a receipt
// named after the request unless receipt is given.
func offerDecision(r intake.Request, offers int, driverID string, at time.Time, receipt string) *dispatch.Decision {
	o := &dispatch.Offer{ID: id.New("ofr", at), RequestID: r.ID, DriverID: driverID, Round: offers, ETASeconds: 300,
		DistanceM: 2500, Status: dispatch.OfferOpen, CreatedAt: at, ExpiresAt: at.Add(30 * time.Second)}
	msg, err := outbox.New(outbox.EventSubject(dispatch.EventOfferCreated), dispatch.EventOfferCreated, at, r.ID, outbox.SystemActor,
		map[string]string{"offer_id": o.ID})
	if err != nil {
		panic(err)
	}
	if receipt == "" {
		receipt = "job-" + r.ID + fmt.Sprint(offers)
	}
	return &dispatch.Decision{RequestID: r.ID, Version: r.Version, Offers: offers, Offer: o,
		Change: intake.Change{Outbox: []outbox.Message{msg}, Receipt: &outbox.Receipt{Consumer: dispatch.Consumer, MessageID: receipt}}}
}

func (f *dispatchFixture) commit(t *testing.T, ds ...*dispatch.Decision) {
	t.Helper()
	if err := f.s.CommitDecisions(context.Background(), ds); err != nil {
		t.Fatalf("CommitDecisions: %v", err)
	}
}

func (f *dispatchFixture) free(t *testing.T) []string {
	t.Helper()
	ids := make([]string, len(f.drivers))
	for i, d := range f.drivers {
		ids[i] = d.ID
	}
	free, err := f.s.FreeDrivers(context.Background(), ids)
	if err != nil {
		t.Fatalf("FreeDrivers: %v", err)
	}
	slices.Sort(free)
	return free
}

// countSubject counts msgs on subject or under it.
func countSubject(msgs []outbox.Message, subject string) int {
	n := 0
	for _, m := range msgs {
		if m.Subject == subject || strings.HasPrefix(m.Subject, subject+".") {
			n++
		}
	}
	return n
}

func testDecisions(t *testing.T, s DispatchStore) {
	ctx := context.Background()
	f := newDispatchFixture(t, s, 3)
	if _, err := s.SetAvailability(ctx, f.drivers[2].ID, fleet.Offline, base); err != nil {
		t.Fatal(err)
	}
	reqs := f.dispatching(t, 3)
	d0, d1 := f.drivers[0].ID, f.drivers[1].ID

	snaps, err := s.Snapshots(ctx, []string{reqs[0].ID, reqs[1].ID, id.New("req", base)})
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 2 || len(snaps[0].Offers) != 0 || len(snaps[0].Request.Timeline) != 2 {
		t.Fatalf("Snapshots = %+v, want the two requests with their timelines and no offers", snaps)
	}
	if got, want := f.free(t), sortedIDs(d0, d1); !slices.Equal(got, want) {
		t.Errorf("FreeDrivers = %v, want the online ones %v", got, want)
	}

	before := len(pending(t, s))
	at := base.Add(time.Minute)
	ok := offerDecision(reqs[0], 0, d0, at, "")
	taken := offerDecision(reqs[1], 0, d0, at, "")                // same driver
	stale := offerDecision(reqs[2], 0, d1, at, "")                // the request moved on since
	stale.Version--                                               //
	offline := offerDecision(reqs[2], 0, f.drivers[2].ID, at, "") // an offline driver
	f.commit(t, ok, taken, stale, offline)
	if ok.Err != nil || !errors.Is(taken.Err, dispatch.ErrDriverTaken) || !errors.Is(stale.Err, dispatch.ErrStale) ||
		!errors.Is(offline.Err, dispatch.ErrDriverTaken) {
		t.Fatalf("errs = %v, %v, %v, %v; want nil, ErrDriverTaken, ErrStale, ErrDriverTaken", ok.Err, taken.Err, stale.Err, offline.Err)
	}
	if n := len(pending(t, s)) - before; n != 1 {
		t.Errorf("%d outbox messages committed, want only the offer's event", n)
	}
	sn := f.snapshot(t, reqs[0].ID)
	if len(sn.Offers) != 1 || sn.Offers[0].ID != ok.Offer.ID || sn.Offers[0].Status != dispatch.OfferOpen ||
		!sn.Offers[0].ExpiresAt.Equal(ok.Offer.ExpiresAt) || sn.Request.Version != reqs[0].Version {
		t.Errorf("snapshot after offer = %+v; want one open offer and the request's version unchanged", sn)
	}
	views, err := s.OpenOffers(ctx, d0, at)
	if err != nil {
		t.Fatal(err)
	}
	want := dispatch.OfferView{OfferID: ok.Offer.ID, RequestID: reqs[0].ID, ServiceType: intake.JumpStart, Location: reqs[0].Location,
		DistanceM: 2500, ETASeconds: 300, ExpiresAt: ok.Offer.ExpiresAt}
	if len(views) != 1 || views[0].OfferID != want.OfferID || views[0].Location != want.Location ||
		views[0].ServiceType != want.ServiceType || views[0].DistanceM != want.DistanceM || !views[0].ExpiresAt.Equal(want.ExpiresAt) {
		t.Errorf("OpenOffers = %+v, want [%+v]", views, want)
	}
	if views, _ := s.OpenOffers(ctx, d0, ok.Offer.ExpiresAt); len(views) != 0 {
		t.Errorf("OpenOffers at the deadline = %+v, want none", views)
	}
	for _, c := range []struct {
		req, driver string
		want        bool
	}{{reqs[0].ID, d0, true}, {reqs[1].ID, d0, false}, {reqs[0].ID, d1, false}} {
		if got, err := s.OfferedTo(ctx, c.req, c.driver); err != nil || got != c.want {
			t.Errorf("OfferedTo(%s, %s) = %v, %v; want %v", c.req, c.driver, got, err, c.want)
		}
	}
	if got, want := f.free(t), sortedIDs(d1); !slices.Equal(got, want) {
		t.Errorf("FreeDrivers with an open offer = %v, want %v", got, want)
	}

	// A second open offer for the same request is refused, whoever
	// decided it on the latest snapshot.
	second := offerDecision(reqs[0], 1, d1, at, "")
	second.Offers = 0
	f.commit(t, second)
	if !errors.Is(second.Err, dispatch.ErrStale) {
		t.Errorf("second offer on an old count: %v, want ErrStale", second.Err)
	}
	second = offerDecision(reqs[0], 1, d1, at, "other")
	f.commit(t, second)
	if !errors.Is(second.Err, dispatch.ErrDriverTaken) {
		t.Errorf("second open offer for a request: %v, want refused as ErrDriverTaken", second.Err)
	}

	// Unfulfilled: the request's own change, with its timeline entry.
	r := reqs[1]
	r.Advance(at)
	change, err := intake.Transition(&r, identity.Principal{UserID: "system", Role: identity.Operator}, intake.StatusUnfulfilled, "no driver", at)
	if err != nil {
		t.Fatal(err)
	}
	change.Receipt = &outbox.Receipt{Consumer: dispatch.Consumer, MessageID: "unfulfil-1"}
	d := &dispatch.Decision{RequestID: r.ID, Version: reqs[1].Version, Offers: 0, Request: &r, Change: change}
	f.commit(t, d)
	if d.Err != nil {
		t.Fatalf("unfulfilled: %v", d.Err)
	}
	got := f.request(t, r.ID)
	if got.Status != intake.StatusUnfulfilled || got.Version != reqs[1].Version+1 || len(got.Timeline) != 3 ||
		got.Timeline[2].Reason != "no driver" || !got.UpdatedAt.Equal(at) {
		t.Errorf("unfulfilled request = %+v", got)
	}
}

func sortedIDs(ids ...string) []string {
	slices.Sort(ids)
	return ids
}

func testDecisionReceipts(t *testing.T, s DispatchStore) {
	f := newDispatchFixture(t, s, 2)
	reqs := f.dispatching(t, 1)
	at := base.Add(time.Minute)
	first := offerDecision(reqs[0], 0, f.drivers[0].ID, at, "job-1")
	f.commit(t, first)
	if first.Err != nil {
		t.Fatal(first.Err)
	}
	// The offer is declined; a redelivery of the job that made it changes
	// nothing (the decline committed the next round's own job).
	if _, err := s.CloseOffer(context.Background(), first.Offer.ID, func(o *dispatch.Offer, r *intake.Request) ([]outbox.Message, error) {
		now := at.Add(time.Second)
		o.Status, o.DecidedAt = dispatch.OfferDeclined, &now
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	again := offerDecision(reqs[0], 1, f.drivers[1].ID, at, "job-1")
	f.commit(t, again)
	if !errors.Is(again.Err, outbox.ErrAlreadyProcessed) {
		t.Errorf("redelivered job: %v, want ErrAlreadyProcessed", again.Err)
	}
	if sn := f.snapshot(t, reqs[0].ID); len(sn.Offers) != 1 {
		t.Errorf("%d offers after a redelivery, want 1", len(sn.Offers))
	}
	// Another driver is offered the next round by the next job; the
	// driver who declined is never offered the request again.
	next := offerDecision(reqs[0], 1, f.drivers[1].ID, at, "job-2")
	twice := offerDecision(reqs[0], 1, f.drivers[0].ID, at, "job-3")
	f.commit(t, next)
	if next.Err != nil {
		t.Fatal(next.Err)
	}
	if err := s.CommitDecisions(context.Background(), []*dispatch.Decision{twice}); err != nil || twice.Err == nil {
		t.Errorf("offering a request twice to a driver: %v, %v; want refused", err, twice.Err)
	}
}

// accept is a minimal accept for the store cases: the offer accepted and
// the request assigned to its driver.
func accept(at time.Time) func(a *dispatch.Assigning) (intake.Change, error) {
	return func(a *dispatch.Assigning) (intake.Change, error) {
		if a.Offer != nil {
			if a.Offer.Status != dispatch.OfferOpen {
				return intake.Change{}, dispatch.ErrOfferClosed
			}
			a.Offer.Status, a.Offer.DecidedAt = dispatch.OfferAccepted, &at
		}
		a.Request.Advance(at)
		a.Request.Assignment = &intake.Assignment{DriverID: a.Driver.ID, DriverName: a.Driver.Name,
			VehiclePlate: a.Driver.VehiclePlate, AssignedAt: at, ETASeconds: 300}
		return intake.Transition(a.Request, identity.Principal{UserID: a.Driver.ID, Role: identity.Driver}, intake.StatusAssigned, "", at)
	}
}

func testAssign(t *testing.T, s DispatchStore) {
	ctx := context.Background()
	f := newDispatchFixture(t, s, 2)
	reqs := f.dispatching(t, 3)
	d0, d1 := f.drivers[0], f.drivers[1]
	at := base.Add(time.Minute)
	offer := offerDecision(reqs[0], 0, d0.ID, at, "")
	f.commit(t, offer)

	got, err := s.Assign(ctx, dispatch.AssignTarget{OfferID: offer.Offer.ID}, accept(at))
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	if got.Status != intake.StatusAssigned || got.Assignment == nil || got.Assignment.DriverID != d0.ID ||
		got.Assignment.DriverName != d0.Name || got.Assignment.VehiclePlate != d0.Driver.VehiclePlate || got.Version != reqs[0].Version+1 {
		t.Fatalf("accepted request = %+v", got)
	}
	stored := f.request(t, reqs[0].ID)
	if stored.Status != intake.StatusAssigned || stored.Assignment == nil || stored.Assignment.ETASeconds != 300 ||
		len(stored.Timeline) != 3 || stored.Timeline[2].Status != intake.StatusAssigned {
		t.Errorf("stored request = %+v", stored)
	}
	if sn := f.snapshot(t, reqs[0].ID); sn.Offers[0].Status != dispatch.OfferAccepted || sn.Offers[0].DecidedAt == nil {
		t.Errorf("offer after accept = %+v", sn.Offers[0])
	}
	if drv, err := s.Driver(ctx, d0.ID); err != nil || drv.CurrentRequestID != reqs[0].ID {
		t.Errorf("driver after accept = %+v, %v; want on %s", drv, err, reqs[0].ID)
	}
	if got, want := f.free(t), sortedIDs(d1.ID); !slices.Equal(got, want) {
		t.Errorf("FreeDrivers = %v, want %v", got, want)
	}
	// The offer is taken: the function sees it accepted.
	if _, err := s.Assign(ctx, dispatch.AssignTarget{OfferID: offer.Offer.ID}, accept(at)); !errors.Is(err, dispatch.ErrOfferClosed) {
		t.Errorf("second accept: %v, want ErrOfferClosed", err)
	}

	// By hand: a busy driver is refused, and nothing is written.
	if _, err := s.Assign(ctx, dispatch.AssignTarget{RequestID: reqs[1].ID, DriverID: d0.ID}, accept(at)); !errors.Is(err, dispatch.ErrDriverBusy) {
		t.Errorf("assign a busy driver: %v, want ErrDriverBusy", err)
	}
	if r := f.request(t, reqs[1].ID); r.Status != intake.StatusDispatching || r.Version != reqs[1].Version {
		t.Errorf("request after a refused assignment = %s v%d", r.Status, r.Version)
	}
	for _, c := range []struct {
		name string
		t    dispatch.AssignTarget
		want error
	}{
		{"unknown offer", dispatch.AssignTarget{OfferID: id.New("ofr", base)}, dispatch.ErrOfferNotFound},
		{"unknown request", dispatch.AssignTarget{RequestID: id.New("req", base), DriverID: d1.ID}, intake.ErrNotFound},
		{"unknown driver", dispatch.AssignTarget{RequestID: reqs[1].ID, DriverID: id.New("usr", base)}, dispatch.ErrUnknownDriver},
		{"not a driver", dispatch.AssignTarget{RequestID: reqs[1].ID, DriverID: f.customer.ID}, dispatch.ErrUnknownDriver},
	} {
		if _, err := s.Assign(ctx, c.t, accept(at)); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// fn's error aborts.
	boom := errors.New("boom")
	if _, err := s.Assign(ctx, dispatch.AssignTarget{RequestID: reqs[1].ID, DriverID: d1.ID},
		func(*dispatch.Assigning) (intake.Change, error) { return intake.Change{}, boom }); !errors.Is(err, boom) {
		t.Errorf("fn error: %v", err)
	}
	// A free driver by hand; the request's open offer (to nobody else
	// here) is withdrawn with the move.
	o2 := offerDecision(reqs[1], 0, d1.ID, at, "")
	f.commit(t, o2)
	got, err = s.Assign(ctx, dispatch.AssignTarget{RequestID: reqs[1].ID, DriverID: d1.ID}, accept(at))
	if err != nil || got.Assignment == nil || got.Assignment.DriverID != d1.ID {
		t.Fatalf("assign by hand: %+v, %v", got, err)
	}
	if sn := f.snapshot(t, reqs[1].ID); sn.Offers[0].Status != dispatch.OfferWithdrawn {
		t.Errorf("open offer after a manual assignment = %s, want withdrawn", sn.Offers[0].Status)
	}

	// Completion frees the driver: its job is derived from the request.
	r, err := s.UpdateRequest(ctx, reqs[0].ID, func(r *intake.Request) (intake.Change, error) {
		r.Advance(at) // one change, several steps: only the last is recorded
		for _, st := range []intake.Status{intake.StatusEnRoute, intake.StatusArrived, intake.StatusInService} {
			if _, err := intake.Transition(r, identity.Principal{UserID: d0.ID, Role: identity.Driver}, st, "", at); err != nil {
				return intake.Change{}, err
			}
		}
		return intake.Transition(r, identity.Principal{UserID: d0.ID, Role: identity.Driver}, intake.StatusCompleted, "", at)
	})
	if err != nil || r.Status != intake.StatusCompleted {
		t.Fatalf("complete: %v", err)
	}
	if got, want := f.free(t), sortedIDs(d0.ID); !slices.Equal(got, want) {
		t.Errorf("FreeDrivers after completion = %v, want %v", got, want)
	}
}

func testWithdrawTrigger(t *testing.T, s DispatchStore) {
	ctx := context.Background()
	f := newDispatchFixture(t, s, 1)
	reqs := f.dispatching(t, 1)
	at := base.Add(time.Minute)
	o := offerDecision(reqs[0], 0, f.drivers[0].ID, at, "")
	f.commit(t, o)
	// A cancellation through intake's update, which knows nothing of
	// offers: the database withdraws the offer in the same transaction.
	cancelAt := at.Add(5 * time.Second)
	if _, err := s.UpdateRequest(ctx, reqs[0].ID, func(r *intake.Request) (intake.Change, error) {
		r.Advance(cancelAt)
		return intake.Transition(r, identity.Principal{UserID: f.customer.ID, Role: identity.Customer}, intake.StatusCancelled, "", cancelAt)
	}); err != nil {
		t.Fatal(err)
	}
	sn := f.snapshot(t, reqs[0].ID)
	if sn.Offers[0].Status != dispatch.OfferWithdrawn || sn.Offers[0].DecidedAt == nil || !sn.Offers[0].DecidedAt.Equal(cancelAt) {
		t.Errorf("offer after the cancellation = %+v, want withdrawn at %s", sn.Offers[0], cancelAt)
	}
	if views, err := s.OpenOffers(ctx, f.drivers[0].ID, at); err != nil || len(views) != 0 {
		t.Errorf("OpenOffers = %+v, %v; want none", views, err)
	}
	if got := f.free(t); len(got) != 1 {
		t.Errorf("the driver is not free again: %v", got)
	}
}

func testCloseOffer(t *testing.T, s DispatchStore) {
	ctx := context.Background()
	f := newDispatchFixture(t, s, 1)
	reqs := f.dispatching(t, 1)
	at := base.Add(time.Minute)
	o := offerDecision(reqs[0], 0, f.drivers[0].ID, at, "")
	f.commit(t, o)
	before := pending(t, s)
	job, _ := intake.NewDispatchJob(reqs[0], at, outbox.SystemActor)
	var seen intake.Request
	closed, err := s.CloseOffer(ctx, o.Offer.ID, func(o *dispatch.Offer, r *intake.Request) ([]outbox.Message, error) {
		seen = *r
		dec := at.Add(time.Second)
		o.Status, o.DecidedAt = dispatch.OfferDeclined, &dec
		return []outbox.Message{job}, nil
	})
	if err != nil || closed.Status != dispatch.OfferDeclined {
		t.Fatalf("CloseOffer = %+v, %v", closed, err)
	}
	if seen.ID != reqs[0].ID || seen.Status != intake.StatusDispatching {
		t.Errorf("fn saw request %s (%s)", seen.ID, seen.Status)
	}
	after := pending(t, s)
	if len(after) != len(before)+1 || after[len(after)-1].ID != job.ID {
		t.Errorf("the next job was not committed with the close")
	}
	if sn := f.snapshot(t, reqs[0].ID); sn.Offers[0].Status != dispatch.OfferDeclined {
		t.Errorf("stored offer = %s", sn.Offers[0].Status)
	}
	if _, err := s.CloseOffer(ctx, o.Offer.ID, func(o *dispatch.Offer, _ *intake.Request) ([]outbox.Message, error) {
		o.Status = dispatch.OfferExpired
		return nil, nil
	}); !errors.Is(err, dispatch.ErrOfferClosed) {
		t.Errorf("closing a closed offer: %v, want ErrOfferClosed", err)
	}
	if _, err := s.CloseOffer(ctx, id.New("ofr", at), func(*dispatch.Offer, *intake.Request) ([]outbox.Message, error) { return nil, nil }); !errors.Is(err, dispatch.ErrOfferNotFound) {
		t.Errorf("unknown offer: %v", err)
	}
}

func expireFn(now time.Time) func(o *dispatch.Offer, r *intake.Request) ([]outbox.Message, error) {
	return func(o *dispatch.Offer, r *intake.Request) ([]outbox.Message, error) {
		o.Status, o.DecidedAt = dispatch.OfferExpired, &now
		job, err := intake.NewDispatchJob(*r, now, outbox.SystemActor)
		return []outbox.Message{job}, err
	}
}

func testExpireOffers(t *testing.T, s DispatchStore) {
	ctx := context.Background()
	f := newDispatchFixture(t, s, 2)
	reqs := f.dispatching(t, 2)
	at := base.Add(time.Minute)
	early := offerDecision(reqs[0], 0, f.drivers[0].ID, at, "")
	late := offerDecision(reqs[1], 0, f.drivers[1].ID, at.Add(10*time.Second), "")
	f.commit(t, early, late)
	now := early.Offer.ExpiresAt
	before := countSubject(pending(t, s), outbox.SubjectDispatchRequest)
	got, err := s.ExpireOffers(ctx, now, 100, expireFn(now))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != early.Offer.ID || got[0].Status != dispatch.OfferExpired {
		t.Fatalf("ExpireOffers = %+v, want only the offer due", got)
	}
	if n := countSubject(pending(t, s), outbox.SubjectDispatchRequest) - before; n != 1 {
		t.Errorf("%d next jobs committed, want 1", n)
	}
	if got, _ := s.ExpireOffers(ctx, now, 100, expireFn(now)); len(got) != 0 {
		t.Errorf("expired again: %+v", got)
	}
	if sn := f.snapshot(t, reqs[1].ID); sn.Offers[0].Status != dispatch.OfferOpen {
		t.Errorf("offer not due = %s, want open", sn.Offers[0].Status)
	}
}

// testExpireConcurrent runs expirers at once over many due offers: each
// offer is expired, and its next job committed, exactly once.
func testExpireConcurrent(t *testing.T, s DispatchStore) {
	ctx := context.Background()
	const n = 40
	f := newDispatchFixture(t, s, n)
	reqs := f.dispatching(t, n)
	at := base.Add(time.Minute)
	var ds []*dispatch.Decision
	for i, r := range reqs {
		ds = append(ds, offerDecision(r, 0, f.drivers[i].ID, at, ""))
	}
	f.commit(t, ds...)
	before := countSubject(pending(t, s), outbox.SubjectDispatchRequest)
	now := at.Add(time.Hour)
	var mu sync.Mutex
	count := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, err := s.ExpireOffers(ctx, now, 7, expireFn(now))
				if err != nil {
					t.Errorf("ExpireOffers: %v", err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, o := range got {
					count[o.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(count) != n {
		t.Errorf("%d offers expired, want %d", len(count), n)
	}
	for o, c := range count {
		if c != 1 {
			t.Errorf("offer %s expired %d times", o, c)
		}
	}
	if got := countSubject(pending(t, s), outbox.SubjectDispatchRequest) - before; got != n {
		t.Errorf("%d next jobs, want %d", got, n)
	}
}

// testAssignConcurrent races assignments: many requests to one driver,
// many drivers to one request. One of each wins; the database agrees.
func testAssignConcurrent(t *testing.T, s DispatchStore) {
	ctx := context.Background()
	const n = 12
	f := newDispatchFixture(t, s, n)
	reqs := f.dispatching(t, n+1)
	at := base.Add(time.Minute)
	race := func(targets []dispatch.AssignTarget) (won []dispatch.AssignTarget) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := make(chan struct{})
		for _, tg := range targets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := s.Assign(ctx, tg, accept(at))
				switch {
				case err == nil:
					mu.Lock()
					won = append(won, tg)
					mu.Unlock()
				case errors.Is(err, dispatch.ErrDriverBusy), errors.Is(err, intake.ErrConflict):
				default:
					t.Errorf("Assign(%+v): %v", tg, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		return won
	}
	var oneDriver []dispatch.AssignTarget
	for _, r := range reqs[:n] {
		oneDriver = append(oneDriver, dispatch.AssignTarget{RequestID: r.ID, DriverID: f.drivers[0].ID})
	}
	if won := race(oneDriver); len(won) != 1 {
		t.Errorf("%d requests took one driver: %+v", len(won), won)
	}
	var oneRequest []dispatch.AssignTarget
	for _, d := range f.drivers[1:] {
		oneRequest = append(oneRequest, dispatch.AssignTarget{RequestID: reqs[n].ID, DriverID: d.ID})
	}
	won := race(oneRequest)
	if len(won) != 1 {
		t.Fatalf("%d drivers took one request: %+v", len(won), won)
	}
	if r := f.request(t, reqs[n].ID); r.Assignment == nil || r.Assignment.DriverID != won[0].DriverID {
		t.Errorf("stored driver %+v, want the winner %s", r.Assignment, won[0].DriverID)
	}
	active, err := s.Requests(ctx, intake.Filter{Statuses: []intake.Status{intake.StatusAssigned}, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(active) != 2 {
		t.Errorf("%d assigned requests, want 2", len(active))
	}
}
