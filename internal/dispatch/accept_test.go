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
