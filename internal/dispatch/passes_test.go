package dispatch_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/yolda/yolda/internal/dispatch"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/store/storetest"
)

// raceThenFail is a store whose first CommitDecisions loses a race (a
// competing offer to one driver commits just before it) and whose second
// fails outright (the database went away).
type raceThenFail struct {
	storetest.DispatchStore
	calls   atomic.Int32
	compete func()
}

var errDatabaseGone = errors.New("database gone")

func (s *raceThenFail) CommitDecisions(ctx context.Context, ds []*dispatch.Decision) error {
	switch s.calls.Add(1) {
	case 1:
		s.compete()
		return s.DispatchStore.CommitDecisions(ctx, ds)
	default:
		return errDatabaseGone
	}
}

// TestLaterPassFailureKeepsWhatCommitted: a batch whose first commit went
// through, and whose second pass (for the request that lost its driver)
// failed, must not report the batch as not applied: the consumer would
// take that as "nothing committed". The committed request is done; the
// failure belongs to the request that was being decided again.
func TestLaterPassFailureKeepsWhatCommitted(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			h := setup(t, engine)
			ctx := context.Background()
			customer := h.user("ayse", identity.Customer)
			a, b, c := h.driver("alpha"), h.driver("bravo"), h.driver("charlie")
			h.online(a, north(1))
			h.online(b, north(2))
			h.online(c, north(30.5))
			r1 := h.request(customer, intake.JumpStart, fatih)
			r2 := h.request(customer, intake.JumpStart, north(60))
			r3 := h.request(customer, intake.JumpStart, north(30))
			h.relay()
			store := &raceThenFail{DispatchStore: h.store}
			store.compete = func() { // alpha is offered r2 by another worker, just now
				sn := h.snapshot(r2.ID)
				o := &dispatch.Offer{ID: "ofr_01JDQ3M6Y9B1X4G0ZC5V7N2K8P", RequestID: r2.ID, DriverID: a.UserID, Status: dispatch.OfferOpen,
					CreatedAt: h.now(), ExpiresAt: h.now().Add(h.cfg.OfferTimeout)}
				d := &dispatch.Decision{RequestID: r2.ID, Version: sn.Request.Version, Offers: len(sn.Offers), Offer: o}
				if err := h.store.CommitDecisions(ctx, []*dispatch.Decision{d}); err != nil || d.Err != nil {
					t.Fatalf("competing offer: %v %v", err, d.Err)
				}
			}
			w, err := dispatch.NewWorker(store, h.fleet, dispatch.WorkerOptions{Config: h.cfg, Now: h.now})
			if err != nil {
				t.Fatal(err)
			}
			res, err := w.Handle(ctx, []dispatch.Job{{MessageID: "m1", RequestID: r1.ID}, {MessageID: "m3", RequestID: r3.ID}})
			if err != nil {
				t.Fatalf("Handle: %v; want the outcome of each job (r3's offer committed)", err)
			}
			if res[1] != nil {
				t.Errorf("r3: %v, want done (its offer committed in the first pass)", res[1])
			}
			if !errors.Is(res[0], errDatabaseGone) {
				t.Errorf("r1: %v, want the second pass's failure", res[0])
			}
			if o := h.onlyOffer(c); o.RequestID != r3.ID {
				t.Errorf("charlie offered %s, want r3", o.RequestID)
			}
			if got := h.offers(b); len(got) != 0 {
				t.Errorf("bravo offered %+v: the failed pass committed something", got)
			}
		})
	}
}

// TestSpentJobDoesNotSwallowAFreshOne: a job delivered again (its ack was
// lost) after its offer was declined, in one batch with the next round's
// job for the same request: the old job's receipt is spent, and the batch
// must still make the next round's offer, not acknowledge both jobs with
// nothing done (the request would sit with no offer and no job).
func TestSpentJobDoesNotSwallowAFreshOne(t *testing.T) {
	forEngines(t, func(t *testing.T, engine string) {
		h := setup(t, engine)
		ctx := context.Background()
		a, b := h.driver("alpha"), h.driver("bravo")
		h.online(a, north(1))
		h.online(b, north(2))
		r := h.request(h.user("ayse", identity.Customer), intake.JumpStart, fatih)
		first := jobsIn(t, h.relay())
		if len(first) != 1 {
			t.Fatalf("jobs %+v", first)
		}
		if res := must(h.worker.Handle(ctx, first)); res[0] != nil {
			t.Fatal(res[0])
		}
		if err := h.svc.Decline(ctx, a, h.onlyOffer(a).OfferID); err != nil {
			t.Fatal(err)
		}
		next := jobsIn(t, h.relay())
		if len(next) != 1 || next[0].RequestID != r.ID {
			t.Fatalf("next round's jobs %+v", next)
		}
		res, err := h.worker.Handle(ctx, []dispatch.Job{first[0], next[0]})
		if err != nil || res[0] != nil || res[1] != nil {
			t.Fatalf("Handle: %v %v", res, err)
		}
		if o := h.offers(b); len(o) != 1 || o[0].RequestID != r.ID {
			t.Errorf("bravo's offers %+v: the next round was not made", o)
		}
	})
}
