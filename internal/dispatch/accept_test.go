package dispatch_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/dispatch"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
)

// TestAnsweringAnExpiredOfferSaysExpired: once the expirer has ended an
// offer, an accept or a decline is told the offer expired (409
// offer-expired), not that someone took it (offer-taken), whichever of the
// two got there first.
func TestAnsweringAnExpiredOfferSaysExpired(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			h := setup(t, engine)
			ctx := context.Background()
			drv := h.driver("drv")
			h.online(drv, north(1))
			h.request(h.user("ayse", identity.Customer), intake.JumpStart, fatih)
			h.dispatch()
			o := h.onlyOffer(drv)
			h.clock.Advance(31 * time.Second)
			if n := must(h.expirer.ExpireOnce(ctx)); n != 1 {
				t.Fatalf("%d offers expired, want 1", n)
			}
			if _, err := h.svc.Accept(ctx, drv, o.OfferID); !errors.Is(err, dispatch.ErrOfferExpired) {
				t.Errorf("accept after the expiry: %v, want ErrOfferExpired", err)
			}
			if err := h.svc.Decline(ctx, drv, o.OfferID); !errors.Is(err, dispatch.ErrOfferExpired) {
				t.Errorf("decline after the expiry: %v, want ErrOfferExpired", err)
			}
		})
	}
}

// TestAcceptingAgainAnswersTheJob: a driver whose accept committed but
// whose answer was lost (a timeout, a dropped connection) tries again; it
// is told it has the job, not that the offer was taken, and nothing
// changes.
func TestAcceptingAgainAnswersTheJob(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			h := setup(t, engine)
			ctx := context.Background()
			drv := h.driver("drv")
			h.online(drv, north(1))
			r := h.request(h.user("ayse", identity.Customer), intake.JumpStart, fatih)
			h.dispatch()
			o := h.onlyOffer(drv)
			first, err := h.svc.Accept(ctx, drv, o.OfferID)
			if err != nil {
				t.Fatal(err)
			}
			h.clock.Advance(time.Minute) // past the deadline, too
			again, err := h.svc.Accept(ctx, drv, o.OfferID)
			if err != nil {
				t.Fatalf("accepting again: %v, want the job", err)
			}
			if again.ID != r.ID || again.Status != intake.StatusAssigned || again.Version != first.Version ||
				again.Assignment == nil || again.Assignment.DriverID != drv.UserID || len(again.Timeline) != len(first.Timeline) {
				t.Errorf("accepting again answered %s v%d %+v, want the request as the first accept left it (v%d)",
					again.Status, again.Version, again.Assignment, first.Version)
			}
			if got := h.get(r.ID); got.Version != first.Version {
				t.Errorf("accepting again changed the request: v%d, want v%d", got.Version, first.Version)
			}
			// Another driver's accepted offer stays someone else's.
			other := h.driver("other")
			if _, err := h.svc.Accept(ctx, other, o.OfferID); !errors.Is(err, dispatch.ErrOfferNotFound) {
				t.Errorf("another driver accepts it: %v, want ErrOfferNotFound", err)
			}
		})
	}
}

// TestAcceptingAJobGivenByHandAnswersTheJob: an operator gives a request
// to the very driver it is offered to (which withdraws the offer); the
// driver's accept, on its way meanwhile, is told it has the job.
func TestAcceptingAJobGivenByHandAnswersTheJob(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			h := setup(t, engine)
			ctx := context.Background()
			op := h.user("operator", identity.Operator)
			drv := h.driver("drv")
			h.online(drv, north(1))
			r := h.request(h.user("ayse", identity.Customer), intake.JumpStart, fatih)
			h.dispatch()
			o := h.onlyOffer(drv)
			byHand, err := h.svc.Assign(ctx, op, r.ID, drv.UserID)
			if err != nil {
				t.Fatal(err)
			}
			got, err := h.svc.Accept(ctx, drv, o.OfferID)
			if err != nil || got.Version != byHand.Version || got.Assignment == nil || got.Assignment.DriverID != drv.UserID {
				t.Errorf("accept of an offer for a job given by hand: %+v, %v; want the job (v%d)", got.Assignment, err, byHand.Version)
			}
		})
	}
}
