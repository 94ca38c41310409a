package dispatch_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/dispatch"
	"github.com/yolda/yolda/internal/geo"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
)

// pipeline runs the moving parts of dispatch in goroutines over one
// harness, as the roles would in processes: a relay feeding a job queue,
// workers taking batches from it (a job asking for a retry comes back after
// its delay) and the expirer.
type pipeline struct {
	h       *harness
	ctx     context.Context
	cancel  context.CancelFunc
	jobs    chan dispatch.Job
	wg      sync.WaitGroup
	retries atomic.Int64
	failed  atomic.Int64
}

func startPipeline(t *testing.T, h *harness, workers, batch int) *pipeline {
	ctx, cancel := context.WithCancel(context.Background())
	p := &pipeline{h: h, ctx: ctx, cancel: cancel, jobs: make(chan dispatch.Job, 100_000)}
	p.wg.Add(1)
	go func() { // the relay
		defer p.wg.Done()
		for ctx.Err() == nil {
			n, err := h.store.RelayOutbox(ctx, 500, time.Minute, func(ms []outbox.Message) []outbox.Publication {
				ok := make([]outbox.Publication, len(ms))
				for i := range ms {
					ok[i] = outbox.Publication{Stream: "JOBS", StreamSeq: uint64(i + 1)}
				}
				for _, j := range jobsIn(t, ms) {
					p.jobs <- j
				}
				return ok
			})
			if err != nil && ctx.Err() == nil {
				t.Errorf("relay: %v", err)
				return
			}
			if n == 0 {
				select {
				case <-ctx.Done():
				case <-time.After(2 * time.Millisecond): // the relay's poll, not a synchronisation
				}
			}
		}
	}()
	for range workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for {
				var js []dispatch.Job
				select {
				case <-ctx.Done():
					return
				case j := <-p.jobs:
					js = append(js, j)
				}
			fill:
				for len(js) < batch {
					select {
					case j := <-p.jobs:
						js = append(js, j)
					default:
						break fill
					}
				}
				res, err := h.worker.Handle(ctx, js)
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("Handle: %v", err)
					}
					return
				}
				for i, e := range res {
					var retry *dispatch.RetryError
					switch {
					case e == nil:
					case errors.As(e, &retry):
						p.retries.Add(1)
						j := js[i]
						time.AfterFunc(retry.After, func() {
							if ctx.Err() == nil {
								p.jobs <- j
							}
						})
					case ctx.Err() != nil && errors.Is(e, context.Canceled):
						// stop() ended a second pass of this batch.
					default:
						p.failed.Add(1)
						t.Errorf("job for %s failed: %v", js[i].RequestID, e)
					}
				}
			}
		}()
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		_ = h.expirer.Run(ctx)
	}()
	return p
}

func (p *pipeline) stop() {
	p.cancel()
	p.wg.Wait()
}

// until polls cond until it holds or the deadline passes.
func until(t *testing.T, deadline time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("after %s: %s", deadline, what)
		}
		time.Sleep(10 * time.Millisecond) // polling for a condition, with a generous deadline
	}
}

// TestInvariantsUnderContention: 200 requests, 50 drivers, 8 workers;
// every driver grabs every offer it sees (and turns some down), an
// operator assigns random pairs by hand at the same time. Afterwards, from
// the database: no driver holds two open requests, no request has two
// drivers, every success reported is what is stored, and every request is
// assigned, unfulfilled, or dispatching with a legal state.
func TestInvariantsUnderContention(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			const nRequests, nDrivers, nWorkers = 200, 50, 8
			h := setupRealTime(t, engine, func(c *dispatch.Config) {
				c.Wait = time.Hour // nobody is unfulfilled for want of a driver: the end is when every driver is busy
				c.RetryEvery = 20 * time.Millisecond
				c.OfferTimeout = 2 * time.Second
				c.BatchThreshold = 4 // crowded batches are matched together
			})
			ctx := context.Background()
			op := h.user("operator", identity.Operator)
			customer := h.user("ayse", identity.Customer)
			drivers := make([]identity.Principal, nDrivers)
			for i := range drivers {
				drivers[i] = h.driver(name(i))
				h.online(drivers[i], north(float64(i%10)*0.3))
			}
			p := startPipeline(t, h, nWorkers, 16)
			defer p.stop()

			// Requests come in from several clients at once.
			ids := make([]string, nRequests)
			var wg sync.WaitGroup
			for c := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := c; i < nRequests; i += 4 {
						cr, err := h.intake.Create(ctx, customer, submission(intake.JumpStart, north(float64(i%7)*0.4)), "")
						if err != nil {
							t.Errorf("create: %v", err)
							return
						}
						ids[i] = cr.Request.ID
					}
				}()
			}
			wg.Wait()

			type won struct{ driver, request string }
			var mu sync.Mutex
			var wins []won
			record := func(driver string, r intake.Request) {
				mu.Lock()
				wins = append(wins, won{driver, r.ID})
				mu.Unlock()
			}
			// The actors stop between calls, never inside one: a call
			// cancelled during its commit may have committed (an ambiguous
			// commit), and its caller would then miss a success the
			// database holds.
			var stopping atomic.Bool
			stopActors := func() { stopping.Store(true) }
			var actors sync.WaitGroup
			for i, d := range drivers {
				actors.Add(1)
				go func() {
					defer actors.Done()
					rnd := rand.New(rand.NewPCG(uint64(i), 7))
					for !stopping.Load() {
						offers, err := h.svc.Offers(ctx, d)
						if err != nil {
							t.Errorf("offers: %v", err)
							return
						}
						for _, o := range offers {
							if rnd.IntN(10) < 2 {
								if err := h.svc.Decline(ctx, d, o.OfferID); err != nil && !errors.Is(err, dispatch.ErrOfferClosed) &&
									!errors.Is(err, dispatch.ErrOfferExpired) {
									t.Errorf("decline: %v", err)
								}
								continue
							}
							r, err := h.svc.Accept(ctx, d, o.OfferID)
							switch {
							case err == nil:
								record(d.UserID, r)
							case errors.Is(err, dispatch.ErrOfferClosed), errors.Is(err, dispatch.ErrOfferExpired),
								errors.Is(err, dispatch.ErrDriverBusy):
							default:
								t.Errorf("accept: %v", err)
							}
						}
						time.Sleep(time.Millisecond) // a driver's app polling, not a synchronisation
					}
				}()
			}
			actors.Add(1)
			go func() { // an operator dispatching by hand into the same drivers
				defer actors.Done()
				rnd := rand.New(rand.NewPCG(99, 1))
				for n := 0; !stopping.Load() && n < 60; n++ {
					d := drivers[rnd.IntN(nDrivers)]
					r := ids[rnd.IntN(nRequests)]
					got, err := h.svc.Assign(ctx, op, r, d.UserID)
					switch {
					case err == nil:
						record(d.UserID, got)
					case errors.Is(err, dispatch.ErrDriverBusy), errors.Is(err, intake.ErrConflict):
					default:
						t.Errorf("assign: %v", err)
					}
				}
			}()

			// The end: every driver is on a job.
			until(t, 2*time.Minute, "not every driver got a job", func() bool {
				busy, err := h.store.Requests(ctx, intake.Filter{Statuses: []intake.Status{intake.StatusAssigned}, Limit: 1000})
				return err == nil && len(busy) >= nDrivers
			})
			stopActors()
			actors.Wait()
			p.stop()

			// From the database.
			snaps, err := h.store.Snapshots(ctx, ids)
			if err != nil || len(snaps) != nRequests {
				t.Fatalf("Snapshots: %d, %v", len(snaps), err)
			}
			onJob := map[string][]string{} // driver -> its open requests
			openOffers := map[string]int{} // driver -> open offers
			count := map[intake.Status]int{}
			for _, s := range snaps {
				r := s.Request
				count[r.Status]++
				accepted := 0
				for _, o := range s.Offers {
					switch o.Status {
					case dispatch.OfferAccepted:
						accepted++
						if r.Assignment == nil || r.Assignment.DriverID != o.DriverID {
							t.Errorf("request %s: offer accepted by %s, request assigned to %+v", r.ID, o.DriverID, r.Assignment)
						}
					case dispatch.OfferOpen:
						openOffers[o.DriverID]++
						if r.Status != intake.StatusDispatching {
							t.Errorf("request %s is %s with an open offer", r.ID, r.Status)
						}
					}
				}
				if accepted > 1 {
					t.Errorf("request %s: %d accepted offers", r.ID, accepted)
				}
				switch r.Status {
				case intake.StatusAssigned:
					onJob[r.Assignment.DriverID] = append(onJob[r.Assignment.DriverID], r.ID)
				case intake.StatusUnfulfilled, intake.StatusDispatching:
					if r.Assignment != nil {
						t.Errorf("request %s is %s with a driver", r.ID, r.Status)
					}
				default:
					t.Errorf("request %s is %s", r.ID, r.Status)
				}
			}
			for d, rs := range onJob {
				if len(rs) > 1 {
					t.Errorf("driver %s holds %d open requests: %v", d, len(rs), rs)
				}
			}
			for d, n := range openOffers {
				if n > 1 {
					t.Errorf("driver %s holds %d open offers", d, n)
				}
			}
			if len(onJob) != nDrivers {
				t.Errorf("%d drivers on a job, want %d", len(onJob), nDrivers)
			}
			// Every success the callers saw is what the database holds.
			for _, w := range wins {
				if rs := onJob[w.driver]; len(rs) != 1 || rs[0] != w.request {
					t.Errorf("driver %s was told it got %s; the database says %v", w.driver, w.request, rs)
				}
			}
			if len(wins) != nDrivers {
				t.Errorf("%d successful accepts and assignments, want one per driver (%d)", len(wins), nDrivers)
			}
			t.Logf("%s: %v; %d retries", engine, count, p.retries.Load())
		})
	}
}

// TestCancelRacesAccept: a customer cancels while the offered driver
// accepts, many times at once. The request ends consistently with the
// order the two committed in: either the cancellation came first (the
// accept is refused, the offer withdrawn, the request never assigned) or
// the accept did (the request went through assigned, then cancelled). In
// both cases the driver ends free and nothing is left open.
func TestCancelRacesAccept(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			const n = 30
			h := setupRealTime(t, engine)
			ctx := context.Background()
			customer := h.user("ayse", identity.Customer)
			drivers := make([]identity.Principal, n)
			reqs := make([]intake.Request, n)
			offers := make([]dispatch.OfferView, n)
			for i := range n {
				// Each driver alone in its own town, so that each request
				// is offered to its own driver.
				drivers[i] = h.driver(name(i))
				at := geo.Point{Lat: 37 + float64(i)*0.5, Lng: 30}
				h.online(drivers[i], at)
				reqs[i] = h.request(customer, intake.JumpStart, at)
			}
			h.dispatch()
			for i := range n {
				offers[i] = h.onlyOffer(drivers[i])
				if offers[i].RequestID != reqs[i].ID {
					t.Fatalf("driver %d offered %s, want %s", i, offers[i].RequestID, reqs[i].ID)
				}
			}
			acceptErr := make([]error, n)
			cancelErr := make([]error, n)
			startGun := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(2)
				go func() {
					defer wg.Done()
					<-startGun
					_, acceptErr[i] = h.svc.Accept(ctx, drivers[i], offers[i].OfferID)
				}()
				go func() {
					defer wg.Done()
					<-startGun
					_, cancelErr[i] = h.intake.Cancel(ctx, customer, reqs[i].ID, "changed my mind")
				}()
			}
			close(startGun)
			wg.Wait()
			accepted := 0
			for i := range n {
				if cancelErr[i] != nil {
					t.Errorf("%d: cancel: %v (a customer may cancel an assigned request)", i, cancelErr[i])
					continue
				}
				r := h.get(reqs[i].ID)
				st := statuses(r)
				sn := h.snapshot(r.ID)
				if r.Status != intake.StatusCancelled {
					t.Errorf("%d: request is %s, want cancelled", i, r.Status)
				}
				switch {
				case acceptErr[i] == nil:
					accepted++
					want := []intake.Status{intake.StatusReceived, intake.StatusDispatching, intake.StatusAssigned, intake.StatusCancelled}
					if fmt.Sprint(st) != fmt.Sprint(want) || sn.Offers[0].Status != dispatch.OfferAccepted {
						t.Errorf("%d: accept won but timeline %v, offer %s", i, st, sn.Offers[0].Status)
					}
				case errors.Is(acceptErr[i], dispatch.ErrOfferClosed):
					want := []intake.Status{intake.StatusReceived, intake.StatusDispatching, intake.StatusCancelled}
					if fmt.Sprint(st) != fmt.Sprint(want) || sn.Offers[0].Status != dispatch.OfferWithdrawn {
						t.Errorf("%d: cancel won but timeline %v, offer %s", i, st, sn.Offers[0].Status)
					}
				default:
					t.Errorf("%d: accept: %v", i, acceptErr[i])
				}
				if d := must(h.fleet.Driver(ctx, drivers[i].UserID)); d.CurrentRequestID != "" {
					t.Errorf("%d: driver still on %s", i, d.CurrentRequestID)
				}
				if len(h.offers(drivers[i])) != 0 {
					t.Errorf("%d: driver still has open offers", i)
				}
			}
			// The status events tell the same story as the timelines.
			h.relay()
			for i := range n {
				var tos []intake.Status
				for _, raw := range h.events("request.status_changed", reqs[i].ID) {
					var c intake.StatusChange
					if err := json.Unmarshal(raw, &c); err != nil {
						t.Fatal(err)
					}
					tos = append(tos, c.To)
				}
				if want := statuses(h.get(reqs[i].ID))[2:]; fmt.Sprint(tos) != fmt.Sprint(want) {
					t.Errorf("%d: events %v, timeline %v", i, tos, want)
				}
			}
			t.Logf("%s: accept first %d of %d", engine, accepted, n)
		})
	}
}
