package dispatch_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/dispatch"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/geo/memory"
	georedis "github.com/yolda/yolda/internal/geo/redis"
	"github.com/yolda/yolda/internal/id"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
)

// BenchmarkDecisionLatency measures dispatch's decision: from a job handed
// to a worker (as a consumer would) to its offer stored and its
// offer.created event committed, with 10,000 drivers online across
// İstanbul and requests arriving at 200/s for 10 s, then the throughput of
// a backlog of 5,000 jobs. Eight workers take batches of up to 64 jobs,
// as the dispatch role does. One run per store and index backend:
//
//	YOLDA_TEST_POSTGRES_URL=... YOLDA_TEST_REDIS_URL=redis://127.0.0.1:6390/8 \
//	go test -run '^$' -bench DecisionLatency -benchtime 1x -timeout 30m ./internal/dispatch/
//
// YOLDA_BENCH_DRIVERS, YOLDA_BENCH_RATE and YOLDA_BENCH_SECONDS change
// the load.
func BenchmarkDecisionLatency(b *testing.B) {
	for _, engine := range []string{"sqlite", "postgres"} {
		for _, index := range []string{"memory", "redis"} {
			b.Run(engine+"/"+index, func(b *testing.B) { benchDecisions(b, engine, index) })
		}
	}
}

func envInt(name string, def int) int {
	var n int
	if _, err := fmt.Sscan(os.Getenv(name), &n); err == nil && n > 0 {
		return n
	}
	return def
}

// istanbul is a random point in a 22 x 42 km box over the city.
func istanbul(r *mrand.Rand) (float64, float64) {
	return 40.95 + r.Float64()*0.20, 28.75 + r.Float64()*0.50
}

func benchIndex(b *testing.B, kind string) fleet.Index {
	if kind == "memory" {
		return memory.New(memory.Options{})
	}
	url := os.Getenv("YOLDA_TEST_REDIS_URL")
	if url == "" {
		b.Skip("YOLDA_TEST_REDIS_URL not set")
	}
	opts, err := goredis.ParseURL(url)
	if err != nil {
		b.Fatal(err)
	}
	rdb := goredis.NewClient(opts)
	var p [6]byte
	_, _ = rand.Read(p[:])
	prefix := "yoldabench:" + hex.EncodeToString(p[:]) + ":"
	b.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		for len(keys) > 0 {
			n := min(len(keys), 1000)
			rdb.Del(ctx, keys[:n]...)
			keys = keys[n:]
		}
		rdb.Close()
	})
	return georedis.New(rdb, georedis.Options{Prefix: prefix})
}

type queued struct {
	job dispatch.Job
	at  time.Time
}

func benchDecisions(b *testing.B, engine, indexKind string) {
	ctx := context.Background()
	nDrivers := envInt("YOLDA_BENCH_DRIVERS", 10_000)
	rate := envInt("YOLDA_BENCH_RATE", 200)
	seconds := envInt("YOLDA_BENCH_SECONDS", 10)
	const backlog, workers, batchMax = 5000, 8, 64

	st := engines[engine](b)
	index := benchIndex(b, indexKind)
	fl := fleet.NewService(st, index, fleet.Options{StaleAfter: time.Hour})
	requests := intake.NewService(st, intake.Options{Batch: intake.BatchOptions{Writers: 2}})
	b.Cleanup(requests.Close)
	worker, err := dispatch.NewWorker(st, fl, dispatch.WorkerOptions{})
	if err != nil {
		b.Fatal(err)
	}

	// 10,000 drivers online across the city, created concurrently.
	rnd := mrand.New(mrand.NewPCG(1, 2))
	setup := time.Now()
	type drv struct {
		u        account.User
		lat, lng float64
	}
	ds := make([]drv, nDrivers)
	for i := range ds {
		lat, lng := istanbul(rnd)
		ds[i] = drv{u: account.User{ID: id.New("usr", time.Now()), Username: fmt.Sprintf("bench%05d", i), Role: identity.Driver,
			PasswordHash: "x", CreatedAt: time.Now(),
			Driver: &account.DriverProfile{VehiclePlate: "34B" + fmt.Sprint(i), VehicleKind: fleet.TowTruck,
				Capabilities: []intake.ServiceType{intake.Tow, intake.JumpStart, intake.FlatTire}}}, lat: lat, lng: lng}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < nDrivers; i += 8 {
				d := ds[i]
				if err := st.CreateUser(ctx, d.u); err != nil {
					errs <- err
					return
				}
				p := identity.Principal{UserID: d.u.ID, Role: identity.Driver}
				if _, err := fl.SetAvailability(ctx, p, fleet.Online); err != nil {
					errs <- err
					return
				}
				lat, lng := d.lat, d.lng
				if _, err := fl.ReportPosition(ctx, p, fleet.PositionReport{Lat: &lat, Lng: &lng, RecordedAt: time.Now().UTC().Format(time.RFC3339Nano)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	customer := account.User{ID: id.New("usr", time.Now()), Username: "benchcustomer", Role: identity.Customer, PasswordHash: "x", CreatedAt: time.Now()}
	if err := st.CreateUser(ctx, customer); err != nil {
		b.Fatal(err)
	}
	who := identity.Principal{UserID: customer.ID, Role: identity.Customer}
	b.Logf("%s/%s: %d drivers online in %s", engine, indexKind, nDrivers, time.Since(setup).Round(time.Second))

	queue := make(chan queued, backlog+rate*seconds)
	var mu sync.Mutex
	var lat []time.Duration
	var decided, retried int
	done := make(chan struct{})
	var workersWG sync.WaitGroup
	for range workers {
		workersWG.Add(1)
		go func() {
			defer workersWG.Done()
			for {
				var batch []queued
				select {
				case <-done:
					return
				case q := <-queue:
					batch = append(batch, q)
				}
			fill:
				for len(batch) < batchMax {
					select {
					case q := <-queue:
						batch = append(batch, q)
					default:
						break fill
					}
				}
				jobs := make([]dispatch.Job, len(batch))
				for i, q := range batch {
					jobs[i] = q.job
				}
				res, err := worker.Handle(ctx, jobs)
				end := time.Now()
				if err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				for i, e := range res {
					if e == nil {
						lat = append(lat, end.Sub(batch[i].at))
						decided++
					} else {
						retried++
					}
				}
				mu.Unlock()
			}
		}()
	}
	submit := func(n int, pace time.Duration) []string {
		ids := make([]string, 0, n)
		tick := time.NewTicker(max(pace, time.Microsecond))
		defer tick.Stop()
		for range n {
			la, ln := istanbul(rnd)
			c, err := requests.Create(ctx, who, benchSubmission(la, ln), "")
			if err != nil {
				b.Fatal(err)
			}
			ids = append(ids, c.Request.ID)
			if pace > 0 {
				queue <- queued{job: dispatch.Job{MessageID: "m-" + c.Request.ID, RequestID: c.Request.ID}, at: time.Now()}
				<-tick.C
			}
		}
		return ids
	}
	waitDecided := func(n int) {
		for {
			mu.Lock()
			d := decided + retried
			mu.Unlock()
			if d >= n {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	// Steady arrivals.
	b.ResetTimer()
	n := rate * seconds
	submit(n, time.Second/time.Duration(rate))
	waitDecided(n)
	mu.Lock()
	steady := slices.Clone(lat)
	steadyDecided, steadyRetried := decided, retried
	lat, decided, retried = nil, 0, 0
	mu.Unlock()

	// A backlog: jobs for requests already stored, all at once.
	ids := submit(backlog, 0)
	startBacklog := time.Now()
	for _, id := range ids {
		queue <- queued{job: dispatch.Job{MessageID: "m-" + id, RequestID: id}, at: startBacklog}
	}
	waitDecided(backlog)
	took := time.Since(startBacklog)
	b.StopTimer()
	close(done)
	workersWG.Wait()

	slices.Sort(steady)
	p := func(q float64) float64 {
		if len(steady) == 0 {
			return 0
		}
		return float64(steady[int(q*float64(len(steady)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(p(0.50), "p50_ms")
	b.ReportMetric(p(0.99), "p99_ms")
	b.ReportMetric(float64(decided)/took.Seconds(), "backlog_decisions/s")
	b.Logf("%s/%s: %d drivers, %d req/s for %ds: %d offers (%d waiting), p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms; backlog of %d: %d offers in %s = %.0f decisions/s",
		engine, indexKind, nDrivers, rate, seconds, steadyDecided, steadyRetried, p(0.5), p(0.9), p(0.99), p(1),
		backlog, decided, took.Round(time.Millisecond), float64(decided)/took.Seconds())
}

func benchSubmission(lat, lng float64) intake.Submission {
	s := submission(intake.JumpStart, north(0))
	s.Location.Lat, s.Location.Lng = &lat, &lng
	return s
}
