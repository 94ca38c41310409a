package dispatch_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/dispatch"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/validate"
)

// TestOfflineDriverGivesUpItsOffer: a driver who goes offline holding an
// offer gives it up at once, and the request moves on to the next driver;
// an accept that races going offline (the withdrawal did not get to run)
// is refused and moves the request on too.
func TestOfflineDriverGivesUpItsOffer(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			h := setup(t, engine)
			ctx := context.Background()
			customer := h.user("ayse", identity.Customer)
			a, b, c := h.driver("alpha"), h.driver("bravo"), h.driver("charlie")
			h.online(a, north(1))
			h.online(b, north(2))
			r := h.request(customer, intake.JumpStart, fatih)
			h.dispatch()
			first := h.onlyOffer(a)

			if _, err := h.fleet.SetAvailability(ctx, a, fleet.Offline); err != nil {
				t.Fatal(err)
			}
			if got := h.offers(a); len(got) != 0 {
				t.Errorf("offline driver still holds %+v", got)
			}
			h.dispatch()
			second := h.onlyOffer(b)
			if second.RequestID != r.ID {
				t.Fatalf("bravo offered %s, want %s", second.RequestID, r.ID)
			}
			var closed dispatch.OfferClosed
			if ev := h.events(dispatch.EventOfferClosed, r.ID); len(ev) != 1 || json.Unmarshal(ev[0], &closed) != nil ||
				closed.OfferID != first.OfferID || closed.Status != dispatch.OfferWithdrawn || closed.Reason != "the driver went offline" {
				t.Errorf("offer.closed events %s", ev)
			}

			// Bravo goes offline and the process dies before withdrawing
			// the offer; bravo's app, not yet told, accepts.
			if _, err := h.store.SetAvailability(ctx, b.UserID, fleet.Offline, h.now()); err != nil {
				t.Fatal(err)
			}
			if _, err := h.svc.Accept(ctx, b, second.OfferID); !errors.Is(err, dispatch.ErrDriverOffline) {
				t.Fatalf("accept by an offline driver: %v, want ErrDriverOffline", err)
			}
			if got := h.get(r.ID); got.Status != intake.StatusDispatching || got.Assignment != nil {
				t.Errorf("request after the refused accept: %s %+v", got.Status, got.Assignment)
			}
			h.online(c, north(3))
			h.dispatch()
			if o := h.onlyOffer(c); o.RequestID != r.ID {
				t.Errorf("charlie offered %s, want %s", o.RequestID, r.ID)
			}
		})
	}
}

// TestManualAssignNeedsAnAbleDriver: an operator cannot give a job to a
// driver who is offline, has no recent position, or whose vehicle cannot
// do the service: 422 on driver_id, and nothing changes.
func TestManualAssignNeedsAnAbleDriver(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			h := setup(t, engine)
			ctx := context.Background()
			op := h.user("operator", identity.Operator)
			customer := h.user("ayse", identity.Customer)
			van := h.user("van", identity.Driver, "jump_start", "flat_tire")
			off, quiet, never, able := h.driver("off"), h.driver("quiet"), h.driver("never"), h.driver("able")
			h.online(quiet, north(50)) // out of every round's reach
			h.clock.Advance(2 * time.Hour)
			for _, d := range []identity.Principal{van, off, able} {
				h.online(d, north(50))
			}
			if _, err := h.fleet.SetAvailability(ctx, never, fleet.Online); err != nil {
				t.Fatal(err)
			}
			if _, err := h.fleet.SetAvailability(ctx, off, fleet.Offline); err != nil {
				t.Fatal(err)
			}
			r := h.request(customer, intake.Tow, fatih)

			for _, c := range []struct {
				name string
				who  identity.Principal
				msg  string
			}{
				{"offline", off, "is offline"},
				{"a van for a tow", van, "cannot do tow"},
				{"position two hours old", quiet, "has no recent position"},
				{"no position at all", never, "has no recent position"},
			} {
				_, err := h.svc.Assign(ctx, op, r.ID, c.who.UserID)
				var fields validate.Errors
				if !errors.As(err, &fields) || len(fields) != 1 || fields[0].Field != "driver_id" || fields[0].Message != c.msg {
					t.Errorf("%s: %v, want driver_id %q", c.name, err, c.msg)
				}
			}
			if got := h.get(r.ID); got.Status != intake.StatusDispatching || got.Version != r.Version {
				t.Errorf("refused assignments changed the request: %s v%d (was v%d)", got.Status, got.Version, r.Version)
			}
			got, err := h.svc.Assign(ctx, op, r.ID, able.UserID)
			if err != nil || got.Assignment == nil || got.Assignment.DriverID != able.UserID {
				t.Fatalf("assign an able driver: %+v, %v", got.Assignment, err)
			}
		})
	}
}
