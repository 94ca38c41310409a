package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/yolda/yolda/internal/loadgen"
)

// run is one simulation in progress.
type run struct {
	o   Options
	ctx context.Context
	c   *clients
	t   *tracker
	err errorCounts

	mu   sync.Mutex
	idle []*customer

	started time.Time
}

// free puts a customer back among those who may ask for help.
func (r *run) free(c *customer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.idle = append(r.idle, c)
}

func (r *run) takeIdle(rng *rand.Rand) *customer {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.idle) == 0 {
		return nil
	}
	i := rng.IntN(len(r.idle))
	c := r.idle[i]
	r.idle[i] = r.idle[len(r.idle)-1]
	r.idle = r.idle[:len(r.idle)-1]
	return c
}

// Run simulates until o.Duration has passed and the open requests have
// ended (or o.Drain has passed), or ctx ends, and reports what it saw.
// Accounts (AccountNames) must exist with o.Password.
func Run(ctx context.Context, o Options) (Report, error) {
	if err := o.Validate(); err != nil {
		return Report{}, err
	}
	o = o.WithDefaults()
	seed := o.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	r := &run{o: o, t: newTracker()}
	r.c = newClients(o, &r.err)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	r.ctx = runCtx

	// Log in and connect everyone, at most ConnectRate a second.
	accounts := AccountNames(o)
	limit := rate.NewLimiter(rate.Limit(o.ConnectRate), max(1, int(o.ConnectRate/10)))
	var drivers []*driver
	var operators []*operator
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(runCtx)
	g.SetLimit(64)
	for i, a := range accounts {
		if err := limit.Wait(gctx); err != nil {
			break
		}
		g.Go(func() error {
			token, err := loadgen.Login(gctx, r.c.rest, r.c.base, a.Username, o.Password)
			if err != nil {
				if gctx.Err() == nil {
					r.err.add("login")
				}
				return fmt.Errorf("log in as %s: %w (were the accounts set up? yolda sim --setup)", a.Username, err)
			}
			sock, err := r.c.dial(runCtx, token)
			if err != nil {
				return nil // counted; the run goes on without it
			}
			mu.Lock()
			defer mu.Unlock()
			switch a.Role {
			case "driver":
				drivers = append(drivers, &driver{r: r, token: token, sock: sock, rng: rand.New(rand.NewPCG(seed, uint64(i)))})
			case "customer":
				c := &customer{r: r, token: token, sock: sock}
				r.idle = append(r.idle, c)
				go sock.read(runCtx, c.inbound)
			default:
				op := &operator{r: r, sock: sock}
				operators = append(operators, op)
				go sock.read(runCtx, op.inbound)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return r.report(), err
	}
	if err := ctx.Err(); err != nil {
		return r.report(), err
	}

	var wg sync.WaitGroup
	for _, d := range drivers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.start(runCtx)
		}()
	}
	r.started = time.Now()
	progressDone := make(chan struct{})
	go r.progress(runCtx, progressDone)

	// Requests at the profile's rate for o.Duration.
	rng := rand.New(rand.NewPCG(seed, 1<<62))
	tick := time.NewTicker(100 * time.Millisecond)
	due := 0.0
	last := r.started
	for creating := true; creating; {
		select {
		case <-runCtx.Done():
			creating = false
			continue
		case now := <-tick.C:
			elapsed := now.Sub(r.started)
			if elapsed >= o.Duration {
				creating = false
				continue
			}
			due += o.rateAt(elapsed) * now.Sub(last).Seconds()
			last = now
			for ; due >= 1; due-- {
				c := r.takeIdle(rng)
				if c == nil {
					r.t.skipped.Add(1) // every customer is waiting for help already
					continue
				}
				crng := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
				go c.ask(runCtx, crng)
			}
		}
	}
	tick.Stop()
	// Drain: the open requests end, or Drain passes.
	drain := time.NewTimer(o.Drain)
	poll := time.NewTicker(250 * time.Millisecond)
	for waiting := true; waiting && r.t.open() > 0; {
		select {
		case <-runCtx.Done():
			waiting = false
		case <-drain.C:
			waiting = false
		case <-poll.C:
		}
	}
	poll.Stop()
	drain.Stop()
	rep := r.report()
	stop()
	<-progressDone
	wg.Wait()
	for _, d := range drivers {
		d.sock.close()
	}
	if err := ctx.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return rep, err
	}
	return rep, nil
}

// progress writes the live progress line until ctx ends.
func (r *run) progress(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	if r.o.Progress == nil {
		return
	}
	tick := time.NewTicker(r.o.ProgressEvery)
	defer tick.Stop()
	lastSent, lastAt := int64(0), time.Now()
	end := "\r"
	if r.o.ProgressLines {
		end = "\n"
	}
	for {
		select {
		case <-ctx.Done():
			if !r.o.ProgressLines {
				fmt.Fprintln(r.o.Progress)
			}
			return
		case now := <-tick.C:
			sent := r.t.positionsSent.Load()
			perSec := float64(sent-lastSent) / now.Sub(lastAt).Seconds()
			lastSent, lastAt = sent, now
			_, errs := r.err.snapshot()
			fmt.Fprintf(r.o.Progress, "%5.0fs  conns %d  requests %d (assigned %d, completed %d, unfulfilled %d, open %d)  positions %.0f/s  fan-out p99 %s  errors %d   %s",
				now.Sub(r.started).Seconds(), r.c.open.Load(), r.t.created.Load(), r.t.assigned.Load(), r.t.completed.Load(),
				r.t.unfulfilled.Load(), r.t.open(), perSec, ms(r.t.fanout.Quantile(0.99)), errs, end)
		}
	}
}
