package dispatch_test

import (
	"context"
	"testing"

	"github.com/yolda/yolda/internal/dispatch"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/store/storetest"
)

// hangUp is a store whose request updates end the caller's context as
// soon as they have committed: a client that hangs up while its answer is
// on the way (a driver's phone losing signal, a customer closing the app).
type hangUp struct {
	storetest.DispatchStore
	cancel func()
}

func (s hangUp) UpdateRequest(ctx context.Context, id string, fn func(*intake.Request) (intake.Change, error)) (intake.Request, error) {
	r, err := s.DispatchStore.UpdateRequest(ctx, id, fn)
	s.cancel()
	return r, err
}

// TestHangUpAfterCommitFreesTheDriverInTheIndex: what a use case does
// after its commit on the caller's behalf (telling the position index that
// the driver is free again) must not depend on the caller still listening.
// A driver left busy in the index is never offered a job again.
func TestHangUpAfterCommitFreesTheDriverInTheIndex(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			for _, how := range []string{"completed", "cancelled"} {
				t.Run(how, func(t *testing.T) {
					h := setup(t, engine)
					customer := h.user("ayse", identity.Customer)
					drv := h.driver("drv")
					h.online(drv, north(1))
					r := h.request(customer, intake.JumpStart, fatih)
					h.dispatch()
					ctx := context.Background()
					if _, err := h.svc.Accept(ctx, drv, h.onlyOffer(drv).OfferID); err != nil {
						t.Fatal(err)
					}
					for _, st := range []intake.Status{intake.StatusEnRoute, intake.StatusArrived, intake.StatusInService} {
						if how == "completed" || st == intake.StatusEnRoute {
							if _, err := h.svc.Progress(ctx, drv, r.ID, st); err != nil {
								t.Fatal(err)
							}
						}
					}

					callCtx, hangUpNow := context.WithCancel(ctx)
					defer hangUpNow()
					store := hangUp{DispatchStore: h.store, cancel: hangUpNow}
					switch how {
					case "completed":
						svc := dispatch.NewService(h.store, store, h.fleet, h.index, nil, dispatch.ServiceOptions{Now: h.now})
						if _, err := svc.Progress(callCtx, drv, r.ID, intake.StatusCompleted); err != nil {
							t.Fatal(err)
						}
					case "cancelled":
						in := intake.NewService(store, intake.Options{Now: h.now, Offers: h.store,
							DriverFreed: func(ctx context.Context, id string) { _, _ = h.fleet.Refresh(ctx, id) }})
						defer in.Close()
						if _, err := in.Cancel(callCtx, customer, r.ID, "found help"); err != nil {
							t.Fatal(err)
						}
					}

					next := h.request(customer, intake.JumpStart, fatih)
					h.dispatch()
					if o := h.offers(drv); len(o) != 1 || o[0].RequestID != next.ID {
						t.Errorf("the freed driver's offers %+v, want one for %s: the index still has it busy", o, next.ID)
					}
				})
			}
		})
	}
}
