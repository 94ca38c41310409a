package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/dispatch"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/validate"
)

// TestEveryPathAtOnce runs every path that moves a request or a driver at
// the same time, over overlapping drivers: workers making offers, the
// expirer ending them, drivers accepting, declining, ignoring, walking
// their jobs to completion and going offline and back, customers
// cancelling, an operator assigning by hand. Any error a caller is not
// promised (a deadlock, a serialisation failure, an internal error) fails
// the test. Afterwards, from the database: every request ended (completed,
// cancelled or unfulfilled: none stuck), each went through legal steps
// only, no request had two drivers, every success a caller was told is
// what is stored, and a driver who went offline held no offer once that
// had returned.
func TestEveryPathAtOnce(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			const nRequests, nDrivers, nWorkers = 60, 16, 4
			h := setupRealTime(t, engine, func(c *dispatch.Config) {
				c.OfferTimeout = time.Second
				c.Wait = 3 * time.Second
				c.RetryEvery = 20 * time.Millisecond
				c.BatchThreshold = 3
			})
			ctx := context.Background()
			op := h.user("operator", identity.Operator)
			customer := h.user("ayse", identity.Customer)
			drivers := make([]identity.Principal, nDrivers)
			for i := range drivers {
				drivers[i] = h.driver(name(i))
				h.online(drivers[i], north(float64(i%8)*0.5))
			}
			p := startPipeline(t, h, nWorkers, 8)
			defer p.stop()

			// Actors stop between calls, never in one: a call cut short
			// may have committed, and its success would be lost.
			var stopping atomic.Bool
			var mu sync.Mutex
			ids := make([]string, 0, nRequests)
			told := map[string]string{} // request -> the driver a caller was told has it
			win := func(req, driver, how string) {
				mu.Lock()
				defer mu.Unlock()
				if prev, ok := told[req]; ok && prev != driver {
					t.Errorf("request %s: %s told %s has it, and earlier %s", req, how, driver, prev)
				}
				told[req] = driver
			}
			some := func(rnd *rand.Rand) string {
				mu.Lock()
				defer mu.Unlock()
				if len(ids) == 0 {
					return ""
				}
				return ids[rnd.IntN(len(ids))]
			}
			unexpected := func(what string, err error) {
				t.Helper()
				t.Errorf("%s: %v", what, err)
			}

			var actors sync.WaitGroup
			defer func() { stopping.Store(true); actors.Wait() }() // also when the test fails early
			// customers: requests come in over time
			actors.Go(func() {
				for i := range nRequests {
					if stopping.Load() {
						return
					}
					cr, err := h.intake.Create(ctx, customer, submission(intake.JumpStart, north(float64(i%6)*0.7)), "")
					if err != nil {
						unexpected("create", err)
						return
					}
					mu.Lock()
					ids = append(ids, cr.Request.ID)
					mu.Unlock()
					time.Sleep(5 * time.Millisecond) // arrivals spread over time, not a synchronisation
				}
			})
			next := map[intake.Status]intake.Status{intake.StatusAssigned: intake.StatusEnRoute, intake.StatusEnRoute: intake.StatusArrived,
				intake.StatusArrived: intake.StatusInService, intake.StatusInService: intake.StatusCompleted}
			for i, d := range drivers {
				actors.Go(func() {
					rnd := rand.New(rand.NewPCG(uint64(i), 11))
					job, offline := "", false
					for !stopping.Load() {
						time.Sleep(time.Millisecond) // a driver's app polling, not a synchronisation
						if job != "" {
							r, err := h.store.Request(ctx, job)
							if err != nil {
								unexpected("read job", err)
								return
							}
							to, ok := next[r.Status]
							if !ok { // cancelled under it
								job = ""
								continue
							}
							if rnd.IntN(3) != 0 {
								continue
							}
							_, err = h.svc.Progress(ctx, d, job, to)
							switch {
							case err == nil && to == intake.StatusCompleted:
								job = ""
							case err == nil, errors.Is(err, intake.ErrConflict): // a cancellation got there first
							default:
								unexpected("progress", err)
							}
							continue
						}
						if rnd.IntN(60) == 0 {
							offline = !offline
							if offline {
								if _, err := h.fleet.SetAvailability(ctx, d, fleet.Offline); err != nil {
									unexpected("go offline", err)
									continue
								}
								if held, err := h.svc.Offers(ctx, d); err != nil || len(held) != 0 {
									t.Errorf("%s went offline and still holds %+v (%v)", d.Username, held, err)
								}
							} else {
								h.online(d, north(float64(i%8)*0.5))
							}
						}
						offers, err := h.svc.Offers(ctx, d)
						if err != nil {
							unexpected("offers", err)
							continue
						}
						for _, o := range offers {
							switch n := rnd.IntN(100); {
							case n < 65:
								r, err := h.svc.Accept(ctx, d, o.OfferID)
								switch {
								case err == nil:
									win(r.ID, d.UserID, "accept")
									job = r.ID
								case errors.Is(err, dispatch.ErrOfferClosed), errors.Is(err, dispatch.ErrOfferExpired),
									errors.Is(err, dispatch.ErrDriverBusy), errors.Is(err, dispatch.ErrDriverOffline):
								default:
									unexpected("accept", err)
								}
							case n < 80:
								err := h.svc.Decline(ctx, d, o.OfferID)
								if err != nil && !errors.Is(err, dispatch.ErrOfferClosed) && !errors.Is(err, dispatch.ErrOfferExpired) {
									unexpected("decline", err)
								}
							default: // ignored: it expires
							}
						}
					}
				})
			}
			actors.Go(func() { // an operator assigning by hand, into the same drivers
				rnd := rand.New(rand.NewPCG(99, 1))
				for !stopping.Load() {
					time.Sleep(15 * time.Millisecond) // an operator's pace, not a synchronisation
					req := some(rnd)
					if req == "" {
						continue
					}
					d := drivers[rnd.IntN(nDrivers)]
					r, err := h.svc.Assign(ctx, op, req, d.UserID)
					var fields validate.Errors
					switch {
					case err == nil:
						win(r.ID, d.UserID, "assign")
					case errors.Is(err, dispatch.ErrDriverBusy), errors.Is(err, intake.ErrConflict), errors.As(err, &fields):
					default:
						unexpected("assign", err)
					}
				}
			})
			actors.Go(func() { // customers calling some off
				rnd := rand.New(rand.NewPCG(7, 7))
				for !stopping.Load() {
					time.Sleep(150 * time.Millisecond) // customers' pace, not a synchronisation
					req := some(rnd)
					if req == "" {
						continue
					}
					if _, err := h.intake.Cancel(ctx, customer, req, "changed my mind"); err != nil && !errors.Is(err, intake.ErrConflict) {
						unexpected("cancel", err)
					}
				}
			})

			// The end: every request has ended.
			final := func(s intake.Status) bool {
				return s == intake.StatusCompleted || s == intake.StatusCancelled || s == intake.StatusUnfulfilled
			}
			until(t, 3*time.Minute, "not every request ended", func() bool {
				mu.Lock()
				snapshot := append([]string(nil), ids...)
				mu.Unlock()
				if len(snapshot) < nRequests {
					return false
				}
				rs, err := h.store.Snapshots(ctx, snapshot)
				if err != nil {
					return false
				}
				for _, s := range rs {
					if !final(s.Request.Status) {
						return false
					}
				}
				return true
			})
			stopping.Store(true)
			actors.Wait()
			p.stop()
			if p.failed.Load() > 0 {
				t.Errorf("%d dispatch jobs failed", p.failed.Load())
			}

			snaps, err := h.store.Snapshots(ctx, ids)
			if err != nil || len(snaps) != nRequests {
				t.Fatalf("Snapshots: %d, %v", len(snaps), err)
			}
			count := map[intake.Status]int{}
			for _, s := range snaps {
				r := s.Request
				count[r.Status]++
				if !final(r.Status) {
					t.Errorf("request %s is %s", r.ID, r.Status)
				}
				for k := 1; k < len(r.Timeline); k++ {
					if from, to := r.Timeline[k-1].Status, r.Timeline[k].Status; !intake.CanMove(from, to) {
						t.Errorf("request %s went %s -> %s", r.ID, from, to)
					}
				}
				accepted := 0
				for _, o := range s.Offers {
					switch o.Status {
					case dispatch.OfferOpen:
						t.Errorf("request %s (%s) has an open offer", r.ID, r.Status)
					case dispatch.OfferAccepted:
						accepted++
						if r.Assignment == nil || r.Assignment.DriverID != o.DriverID {
							t.Errorf("request %s: offer accepted by %s, assigned to %+v", r.ID, o.DriverID, r.Assignment)
						}
					}
				}
				if accepted > 1 {
					t.Errorf("request %s: %d accepted offers", r.ID, accepted)
				}
				if d, ok := told[r.ID]; ok && (r.Assignment == nil || r.Assignment.DriverID != d) {
					t.Errorf("request %s: a caller was told %s has it; stored %+v", r.ID, d, r.Assignment)
				}
				if _, ok := told[r.ID]; !ok && r.Assignment != nil {
					t.Errorf("request %s has driver %s and no caller was told", r.ID, r.Assignment.DriverID)
				}
			}
			for _, d := range drivers {
				if got := must(h.fleet.Driver(ctx, d.UserID)); got.CurrentRequestID != "" {
					t.Errorf("driver %s still on %s", d.Username, got.CurrentRequestID)
				}
			}
			t.Logf("%s: %v; %d jobs asked to wait or retry; %s", engine, count, p.retries.Load(), fmt.Sprint(len(told), " assignments"))
		})
	}
}
