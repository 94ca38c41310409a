package dispatch_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/yolda/yolda/internal/dispatch"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/validate"
)

func TestOfferGoesToTheFastestFreeDriver(t *testing.T) {
	h := setup(t, "sqlite")
	ctx := context.Background()
	near, far, other := h.driver("near"), h.driver("far"), h.driver("other")
	h.online(near, north(1))
	h.online(far, north(3))
	customer := h.user("ayse", identity.Customer)
	r := h.request(customer, intake.JumpStart, fatih)

	if out := h.dispatch(); out[r.ID] != nil {
		t.Fatalf("outcome %v, want an offer", out[r.ID])
	}
	o := h.onlyOffer(near)
	if len(h.offers(far)) != 0 {
		t.Errorf("the slower driver got an offer too")
	}
	if o.RequestID != r.ID || o.ServiceType != intake.JumpStart || o.Location != r.Location ||
		o.DistanceM < 990 || o.DistanceM > 1010 || o.ETASeconds <= 0 || !o.ExpiresAt.Equal(start.Add(30*time.Second)) {
		t.Errorf("offer = %+v", o)
	}
	h.relay()
	ev := h.events(dispatch.EventOfferCreated, r.ID)
	if len(ev) != 1 {
		t.Fatalf("%d offer.created events, want 1", len(ev))
	}
	var created dispatch.OfferCreated
	if err := json.Unmarshal(ev[0], &created); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(o, created.OfferView); diff != "" || created.DriverID != near.UserID || created.Round != 0 {
		t.Errorf("offer.created (-view +event): %s; driver %s round %d", diff, created.DriverID, created.Round)
	}
	// The offered driver may read the request; another driver may not.
	if _, err := h.intake.Get(ctx, near, r.ID); err != nil {
		t.Errorf("offered driver reads the request: %v", err)
	}
	for _, who := range []identity.Principal{far, other} {
		if _, err := h.intake.Get(ctx, who, r.ID); !errors.Is(err, intake.ErrNotFound) {
			t.Errorf("%s reads a request not offered to it: %v, want ErrNotFound", who.Username, err)
		}
	}
	// A redelivered job changes nothing: the offer is open.
	if res, err := h.worker.Handle(ctx, []dispatch.Job{{MessageID: "again", RequestID: r.ID}}); err != nil || res[0] != nil {
		t.Fatalf("redelivery: %v %v", res, err)
	}
	if sn := h.snapshot(r.ID); len(sn.Offers) != 1 {
		t.Errorf("%d offers after a redelivery, want 1", len(sn.Offers))
	}
}

func TestAcceptAssigns(t *testing.T) {
	h := setup(t, "sqlite")
	ctx := context.Background()
	drv, other := h.driver("drv"), h.driver("other")
	h.online(drv, north(1))
	customer := h.user("ayse", identity.Customer)
	r := h.request(customer, intake.JumpStart, fatih)
	h.dispatch()
	o := h.onlyOffer(drv)

	if _, err := h.svc.Accept(ctx, other, o.OfferID); !errors.Is(err, dispatch.ErrOfferNotFound) {
		t.Errorf("another driver accepts: %v, want ErrOfferNotFound", err)
	}
	if _, err := h.svc.Accept(ctx, customer, o.OfferID); !errors.Is(err, intake.ErrForbidden) {
		t.Errorf("a customer accepts: %v, want ErrForbidden", err)
	}
	h.clock.Advance(10 * time.Second)
	got, err := h.svc.Accept(ctx, drv, o.OfferID)
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	a := got.Assignment
	if got.Status != intake.StatusAssigned || a == nil || a.DriverID != drv.UserID || a.VehiclePlate != "34DRV" ||
		a.ETASeconds != o.ETASeconds || !a.AssignedAt.Equal(start.Add(10*time.Second)) {
		t.Fatalf("accepted request = %+v (assignment %+v)", got, a)
	}
	if want := []intake.Status{intake.StatusReceived, intake.StatusDispatching, intake.StatusAssigned}; !slices.Equal(statuses(h.get(r.ID)), want) {
		t.Errorf("timeline %v, want %v", statuses(h.get(r.ID)), want)
	}
	if _, err := h.svc.Accept(ctx, drv, o.OfferID); !errors.Is(err, dispatch.ErrOfferClosed) {
		t.Errorf("accepting again: %v, want ErrOfferClosed", err)
	}
	h.relay()
	var change intake.StatusChange
	ev := h.events("request.status_changed", r.ID)
	if len(ev) != 1 || json.Unmarshal(ev[0], &change) != nil || change.To != intake.StatusAssigned || change.DriverID != drv.UserID {
		t.Errorf("status events %s, want one to assigned naming the driver", ev)
	}
	var closed dispatch.OfferClosed
	if ev := h.events(dispatch.EventOfferClosed, r.ID); len(ev) != 1 || json.Unmarshal(ev[0], &closed) != nil || closed.Status != dispatch.OfferAccepted {
		t.Errorf("offer.closed events %s", ev)
	}
	// The index knows the driver is busy: no candidate for a new request.
	if c, err := h.fleet.Candidates(ctx, fleet.CandidateQuery{At: fatih, Service: intake.JumpStart, RadiusKm: 10, Limit: 5}); err != nil || len(c) != 0 {
		t.Errorf("candidates after the accept: %+v", c)
	}
	d := must(h.fleet.Driver(ctx, drv.UserID))
	if d.CurrentRequestID != r.ID {
		t.Errorf("driver's current request %q, want %s", d.CurrentRequestID, r.ID)
	}
	if _, err := h.intake.Get(ctx, drv, r.ID); err != nil {
		t.Errorf("assigned driver reads the request: %v", err)
	}
}

func TestExpiredOfferMovesOn(t *testing.T) {
	h := setup(t, "sqlite")
	ctx := context.Background()
	first, second := h.driver("first"), h.driver("second")
	h.online(first, north(1))
	h.online(second, north(2))
	r := h.request(h.user("ayse", identity.Customer), intake.JumpStart, fatih)
	h.dispatch()
	o := h.onlyOffer(first)

	h.clock.Advance(30 * time.Second)
	if _, err := h.svc.Accept(ctx, first, o.OfferID); !errors.Is(err, dispatch.ErrOfferExpired) {
		t.Fatalf("accept at the deadline: %v, want ErrOfferExpired", err)
	}
	if n := must(h.expirer.ExpireOnce(ctx)); n != 1 {
		t.Fatalf("%d offers expired, want 1", n)
	}
	if sn := h.snapshot(r.ID); sn.Offers[0].Status != dispatch.OfferExpired {
		t.Errorf("offer is %s, want expired", sn.Offers[0].Status)
	}
	if out := h.dispatch(); out[r.ID] != nil {
		t.Fatalf("next round: %v", out[r.ID])
	}
	next := h.onlyOffer(second)
	sn := h.snapshot(r.ID)
	if len(sn.Offers) != 2 || sn.Offers[1].Round != 1 || sn.Offers[1].DriverID != second.UserID {
		t.Errorf("offers %+v, want the second driver in round 1", sn.Offers)
	}
	if len(h.offers(first)) != 0 {
		t.Errorf("the driver who let it expire is offered it again")
	}
	if _, err := h.svc.Accept(ctx, second, next.OfferID); err != nil {
		t.Fatalf("accept the next offer: %v", err)
	}
}

func TestRoundsWidenThenUnfulfilled(t *testing.T) {
	h := setup(t, "sqlite", func(c *dispatch.Config) { c.RadiiKm = []float64{5, 10, 20} })
	ctx := context.Background()
	d3, d8, d15, d30 := h.driver("at3km"), h.driver("at8km"), h.driver("at15km"), h.driver("at30km")
	h.online(d8, north(8))
	h.online(d15, north(15))
	h.online(d30, north(30)) // beyond every round
	r := h.request(h.user("ayse", identity.Customer), intake.JumpStart, fatih)

	// Nobody within 5 km: the first round is skipped at once.
	h.dispatch()
	o := h.onlyOffer(d8)
	if sn := h.snapshot(r.ID); sn.Offers[0].Round != 1 {
		t.Errorf("first offer in round %d, want 1 (5 km held nobody)", sn.Offers[0].Round)
	}
	// A driver 3 km away comes online; round 2 reaches 20 km but the
	// fastest driver wins.
	h.online(d3, north(3))
	if err := h.svc.Decline(ctx, d8, o.OfferID); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.Decline(ctx, d8, o.OfferID); !errors.Is(err, dispatch.ErrOfferClosed) {
		t.Errorf("declining twice: %v", err)
	}
	h.dispatch()
	o = h.onlyOffer(d3)
	if err := h.svc.Decline(ctx, d3, o.OfferID); err != nil {
		t.Fatal(err)
	}
	// That was the last round.
	if out := h.dispatch(); out[r.ID] != nil {
		t.Fatalf("after the last round: %v", out[r.ID])
	}
	got := h.get(r.ID)
	if got.Status != intake.StatusUnfulfilled || got.Timeline[len(got.Timeline)-1].Reason != "no driver took the job in 3 rounds" {
		t.Errorf("request = %s %+v, want unfulfilled after 3 rounds", got.Status, got.Timeline)
	}
	if len(h.offers(d15)) != 0 || len(h.offers(d30)) != 0 {
		t.Errorf("offers after unfulfilled")
	}
	h.relay()
	var change intake.StatusChange
	if ev := h.events("request.status_changed", r.ID); len(ev) != 1 || json.Unmarshal(ev[0], &change) != nil || change.To != intake.StatusUnfulfilled {
		t.Errorf("status events %s, want one to unfulfilled", ev)
	}
}

func TestNoDriverWaitsThenUnfulfilled(t *testing.T) {
	h := setup(t, "sqlite", func(c *dispatch.Config) { c.Wait = time.Minute; c.RetryEvery = 5 * time.Second })
	ctx := context.Background()
	r := h.request(h.user("ayse", identity.Customer), intake.JumpStart, fatih)
	jobs := jobsIn(t, h.relay())
	res := must(h.worker.Handle(ctx, jobs))
	var retry *dispatch.RetryError
	if !errors.As(res[0], &retry) || retry.After != 5*time.Second {
		t.Fatalf("no driver: %v, want a retry in 5s", res[0])
	}
	// A driver comes online within the wait: it gets the offer.
	h.clock.Advance(50 * time.Second)
	late := h.driver("late")
	h.online(late, north(3))
	if res := must(h.worker.Handle(ctx, jobs)); res[0] != nil {
		t.Fatalf("with a driver: %v", res[0])
	}
	o := h.onlyOffer(late)
	if err := h.svc.Decline(ctx, late, o.OfferID); err != nil {
		t.Fatal(err)
	}
	// The wait starts again from the decline; once it is over, unfulfilled.
	jobs = jobsIn(t, h.relay())
	h.clock.Advance(59 * time.Second)
	if res := must(h.worker.Handle(ctx, jobs)); !errors.As(res[0], &retry) || retry.After != time.Second {
		t.Fatalf("a second before the end of the wait: %v, want a retry in 1s", res[0])
	}
	h.clock.Advance(time.Second)
	if res := must(h.worker.Handle(ctx, jobs)); res[0] != nil {
		t.Fatalf("after the wait: %v", res[0])
	}
	if got := h.get(r.ID); got.Status != intake.StatusUnfulfilled {
		t.Errorf("request is %s, want unfulfilled", got.Status)
	}
}

func TestOneOpenOfferPerDriver(t *testing.T) {
	h := setup(t, "sqlite")
	only := h.driver("only")
	h.online(only, north(1))
	customer := h.user("ayse", identity.Customer)
	a := h.request(customer, intake.JumpStart, fatih)
	h.clock.Advance(time.Millisecond) // ids are time-ordered: a is older
	b := h.request(customer, intake.JumpStart, north(0.5))
	out := h.dispatch() // one batch for both
	if out[a.ID] != nil || !isRetry(out[b.ID]) {
		t.Errorf("outcomes %v / %v: want the older request offered, the other waiting", out[a.ID], out[b.ID])
	}
	if o := h.onlyOffer(only); o.RequestID != a.ID {
		t.Errorf("offer for %s, want %s", o.RequestID, a.ID)
	}
	// Another worker, another batch: still not offered twice.
	res := must(h.worker.Handle(context.Background(), []dispatch.Job{{MessageID: "m2", RequestID: b.ID}}))
	if !isRetry(res[0]) || len(h.offers(only)) != 1 {
		t.Errorf("second batch: %v, %d offers", res[0], len(h.offers(only)))
	}
}

func TestCapabilityIsRequired(t *testing.T) {
	h := setup(t, "sqlite")
	van := h.user("van", identity.Driver, "jump_start")
	truck := h.driver("truck")
	h.online(van, north(1))
	h.online(truck, north(4))
	r := h.request(h.user("ayse", identity.Customer), intake.Tow, fatih)
	h.dispatch()
	if len(h.offers(van)) != 0 {
		t.Errorf("a van was offered a tow")
	}
	if o := h.onlyOffer(truck); o.RequestID != r.ID {
		t.Errorf("offer %+v", o)
	}
}

// TestBatchMatchingBeatsGreedy: two requests compete for two drivers.
// Nearest-first gives the older request the driver both want and sends
// the other one far; matching them together gives each a near driver.
func TestBatchMatchingBeatsGreedy(t *testing.T) {
	totals := map[string]int{}
	for _, c := range []struct {
		name      string
		threshold int
		wantA     string // who request a gets
	}{{"greedy", -1, "x"}, {"batch", 1, "y"}} {
		t.Run(c.name, func(t *testing.T) {
			h := setup(t, "sqlite", func(cfg *dispatch.Config) { cfg.BatchThreshold = c.threshold })
			x, y := h.driver("xavier"), h.driver("yusuf")
			h.online(x, north(1))    // 1 km from a, 0.5 km from b
			h.online(y, north(-1.2)) // 1.2 km from a, 2.7 km from b
			customer := h.user("ayse", identity.Customer)
			a := h.request(customer, intake.JumpStart, fatih)
			h.clock.Advance(time.Millisecond) // ids are time-ordered: a is older
			b := h.request(customer, intake.JumpStart, north(1.5))
			out := h.dispatch()
			if out[a.ID] != nil || out[b.ID] != nil {
				t.Fatalf("outcomes %v %v", out[a.ID], out[b.ID])
			}
			byName := map[string]identity.Principal{"x": x, "y": y}
			if o := h.onlyOffer(byName[c.wantA]); o.RequestID != a.ID {
				t.Errorf("%s got %s, want request a", c.wantA, o.RequestID)
			}
			total := 0
			for _, who := range []identity.Principal{x, y} {
				total += h.onlyOffer(who).ETASeconds
			}
			totals[c.name] = total
		})
	}
	if totals["batch"] >= totals["greedy"] {
		t.Errorf("total ETA: batch %d s, greedy %d s; want batch lower", totals["batch"], totals["greedy"])
	}
}

func TestManualAssign(t *testing.T) {
	h := setup(t, "sqlite")
	ctx := context.Background()
	op := h.user("operator", identity.Operator)
	customer := h.user("ayse", identity.Customer)
	held, spare := h.driver("held"), h.driver("spare")
	h.online(held, north(1))
	a := h.request(customer, intake.JumpStart, fatih)
	h.dispatch()
	h.onlyOffer(held) // held has an open offer for a
	b := h.request(customer, intake.JumpStart, north(5))
	h.relay() // b waits: held is the only driver online

	for _, c := range []struct {
		name        string
		who         identity.Principal
		req, driver string
		want        error
	}{
		{"a customer", customer, b.ID, held.UserID, intake.ErrForbidden},
		{"not a driver id", op, b.ID, "usr_nope", validate.Errors{}},
		{"a customer's id", op, b.ID, customer.UserID, validate.Errors{}},
		{"unknown request", op, "req_01JDQ3M6Y9B1X4G0ZC5V7N2K8P", held.UserID, intake.ErrNotFound},
	} {
		_, err := h.svc.Assign(ctx, c.who, c.req, c.driver)
		var fields validate.Errors
		if _, isFields := c.want.(validate.Errors); isFields {
			if !errors.As(err, &fields) || fields[0].Field != "driver_id" {
				t.Errorf("%s: %v, want a driver_id field error", c.name, err)
			}
		} else if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// The operator gives b to the driver holding a's offer: a's offer is
	// withdrawn and a moves on.
	got, err := h.svc.Assign(ctx, op, b.ID, held.UserID)
	if err != nil {
		t.Fatalf("Assign: %v", err)
	}
	if got.Status != intake.StatusAssigned || got.Assignment.DriverID != held.UserID || got.Assignment.ETASeconds <= 0 {
		t.Errorf("assigned = %+v", got.Assignment)
	}
	if len(h.offers(held)) != 0 {
		t.Errorf("held still has an open offer")
	}
	if sn := h.snapshot(a.ID); sn.Offers[0].Status != dispatch.OfferWithdrawn {
		t.Errorf("a's offer is %s, want withdrawn", sn.Offers[0].Status)
	}
	h.online(spare, north(2))
	h.dispatch()
	if o := h.onlyOffer(spare); o.RequestID != a.ID {
		t.Errorf("a moved on to %+v", o)
	}
	// A busy driver, and a request that cannot move, answer conflicts.
	if _, err := h.svc.Assign(ctx, op, a.ID, held.UserID); !errors.Is(err, dispatch.ErrDriverBusy) {
		t.Errorf("assign a busy driver: %v, want ErrDriverBusy", err)
	}
	if _, err := h.svc.Assign(ctx, op, b.ID, spare.UserID); !errors.Is(err, intake.ErrConflict) {
		t.Errorf("assign an assigned request: %v, want ErrConflict", err)
	}
}

func TestAcceptLostToAManualAssignment(t *testing.T) {
	h := setup(t, "sqlite")
	ctx := context.Background()
	op := h.user("operator", identity.Operator)
	customer := h.user("ayse", identity.Customer)
	drv, other := h.driver("drv"), h.driver("other")
	h.online(drv, north(1))
	a := h.request(customer, intake.JumpStart, fatih)
	h.dispatch()
	o := h.onlyOffer(drv)
	b := h.request(customer, intake.JumpStart, north(9))
	h.relay()
	// The operator's assignment commits; the withdrawal of drv's other
	// offer has not happened yet (a crash in between), and drv accepts.
	if _, err := h.store.Assign(ctx, dispatch.AssignTarget{RequestID: b.ID, DriverID: drv.UserID},
		func(x *dispatch.Assigning) (intake.Change, error) {
			x.Request.Advance(start)
			x.Request.Assignment = &intake.Assignment{DriverID: x.Driver.ID, AssignedAt: start}
			return intake.Transition(x.Request, op, intake.StatusAssigned, "", start)
		}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Accept(ctx, drv, o.OfferID); !errors.Is(err, dispatch.ErrDriverBusy) {
		t.Fatalf("accept while on another job: %v, want ErrDriverBusy", err)
	}
	if sn := h.snapshot(a.ID); sn.Offers[0].Status != dispatch.OfferWithdrawn {
		t.Errorf("lost offer is %s, want withdrawn", sn.Offers[0].Status)
	}
	h.online(other, north(2))
	if _, err := h.fleet.Refresh(ctx, drv.UserID); err != nil {
		t.Fatal(err)
	}
	h.dispatch()
	if o := h.onlyOffer(other); o.RequestID != a.ID {
		t.Errorf("a moved on to %+v", o)
	}
}

func TestProgressToCompletion(t *testing.T) {
	h := setup(t, "sqlite")
	ctx := context.Background()
	customer := h.user("ayse", identity.Customer)
	drv, other := h.driver("drv"), h.driver("other")
	h.online(drv, north(1))
	r := h.request(customer, intake.JumpStart, fatih)
	h.dispatch()
	if _, err := h.svc.Accept(ctx, drv, h.onlyOffer(drv).OfferID); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		who  identity.Principal
		to   intake.Status
		want error
	}{
		{customer, intake.StatusEnRoute, intake.ErrForbidden},
		{other, intake.StatusEnRoute, intake.ErrNotFound},
		{drv, "teleported", validate.Errors{}},
		{drv, intake.StatusArrived, intake.ErrConflict}, // en_route first
		{drv, intake.StatusEnRoute, nil},
		{drv, intake.StatusEnRoute, intake.ErrConflict},
		{drv, intake.StatusArrived, nil},
		{drv, intake.StatusInService, nil},
		{drv, intake.StatusCompleted, nil},
		{drv, intake.StatusCompleted, intake.ErrConflict},
	}
	for _, c := range checks {
		h.clock.Advance(time.Minute)
		_, err := h.svc.Progress(ctx, c.who, r.ID, c.to)
		var fields validate.Errors
		switch want := c.want.(type) {
		case validate.Errors:
			if !errors.As(err, &fields) || fields[0].Field != "status" {
				t.Errorf("%s -> %s: %v, want a status field error", c.who.Username, c.to, err)
			}
		default:
			if !errors.Is(err, want) && !(want == nil && err == nil) {
				t.Errorf("%s -> %s: %v, want %v", c.who.Username, c.to, err, want)
			}
		}
	}
	got := h.get(r.ID)
	want := []intake.Status{intake.StatusReceived, intake.StatusDispatching, intake.StatusAssigned,
		intake.StatusEnRoute, intake.StatusArrived, intake.StatusInService, intake.StatusCompleted}
	if !slices.Equal(statuses(got), want) {
		t.Errorf("timeline %v, want %v", statuses(got), want)
	}
	// Completion frees the driver, in the database and in the index.
	if d := must(h.fleet.Driver(ctx, drv.UserID)); d.CurrentRequestID != "" {
		t.Errorf("driver still on %s", d.CurrentRequestID)
	}
	next := h.request(customer, intake.JumpStart, fatih)
	h.dispatch()
	if o := h.onlyOffer(drv); o.RequestID != next.ID {
		t.Errorf("free driver got %+v", o)
	}
}

func TestCancelFreesTheDriver(t *testing.T) {
	h := setup(t, "sqlite")
	ctx := context.Background()
	customer := h.user("ayse", identity.Customer)
	drv := h.driver("drv")
	h.online(drv, north(1))
	r := h.request(customer, intake.JumpStart, fatih)
	h.dispatch()
	if _, err := h.svc.Accept(ctx, drv, h.onlyOffer(drv).OfferID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Progress(ctx, drv, r.ID, intake.StatusEnRoute); err != nil {
		t.Fatal(err)
	}
	if _, err := h.intake.Cancel(ctx, customer, r.ID, "found help"); err != nil {
		t.Fatal(err)
	}
	if d := must(h.fleet.Driver(ctx, drv.UserID)); d.CurrentRequestID != "" {
		t.Errorf("driver still on %s after the cancellation", d.CurrentRequestID)
	}
	next := h.request(customer, intake.JumpStart, fatih)
	h.dispatch()
	if o := h.onlyOffer(drv); o.RequestID != next.ID {
		t.Errorf("freed driver got %+v, want an offer for the next request", o)
	}
	if _, err := h.svc.Progress(ctx, drv, r.ID, intake.StatusArrived); !errors.Is(err, intake.ErrConflict) {
		t.Errorf("progress on a cancelled job: %v, want ErrConflict", err)
	}
}

// TestLooksFurtherWhenTheNearestAreTaken: the index does not know who
// holds an open offer. When a request's nearest candidates all do, the
// worker asks again for more instead of waiting.
func TestLooksFurtherWhenTheNearestAreTaken(t *testing.T) {
	h := setup(t, "sqlite", func(c *dispatch.Config) { c.Candidates = 2 })
	a, b, c := h.driver("alpha"), h.driver("bravo"), h.driver("charlie")
	h.online(a, north(1))
	h.online(b, north(1.5))
	h.online(c, north(5))
	customer := h.user("ayse", identity.Customer)
	h.request(customer, intake.JumpStart, fatih)
	h.clock.Advance(time.Millisecond)
	h.request(customer, intake.JumpStart, fatih)
	h.dispatch() // the two nearest drivers get them
	if len(h.offers(a)) != 1 || len(h.offers(b)) != 1 {
		t.Fatalf("offers: %d %d", len(h.offers(a)), len(h.offers(b)))
	}
	r := h.request(customer, intake.JumpStart, fatih)
	if out := h.dispatch(); out[r.ID] != nil {
		t.Fatalf("third request: %v, want an offer further away", out[r.ID])
	}
	if o := h.onlyOffer(c); o.RequestID != r.ID {
		t.Errorf("charlie got %+v", o)
	}
}

// TestBatchDoesNotStarveTheOldest: matching a batch for the least total
// ETA would give the one driver to the newer request, which is nearer;
// the older one has waited long enough that it goes first.
func TestBatchDoesNotStarveTheOldest(t *testing.T) {
	h := setup(t, "sqlite", func(c *dispatch.Config) { c.BatchThreshold = 1 })
	x := h.driver("xavier")
	customer := h.user("ayse", identity.Customer)
	old := h.request(customer, intake.JumpStart, fatih)
	h.relay() // its first look found nobody: it waits
	h.clock.Advance(50 * time.Second)
	h.online(x, north(1)) // 1 km from the old request, 0.6 km from the new
	fresh := h.request(customer, intake.JumpStart, north(1.6))
	res := must(h.worker.Handle(context.Background(), []dispatch.Job{{MessageID: "m-old", RequestID: old.ID}, {MessageID: "m-new", RequestID: fresh.ID}}))
	if res[0] != nil || !isRetry(res[1]) {
		t.Fatalf("outcomes %v, %v: want the old request offered, the new one waiting", res[0], res[1])
	}
	if o := h.onlyOffer(x); o.RequestID != old.ID {
		t.Errorf("offer for %s, want the old request %s", o.RequestID, old.ID)
	}
}
