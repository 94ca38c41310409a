package hotread_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/cache"
	cachememory "github.com/yolda/yolda/internal/cache/memory"
	cacheredis "github.com/yolda/yolda/internal/cache/redis"
	"github.com/yolda/yolda/internal/hotread"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/redistest"
	"github.com/yolda/yolda/internal/store/postgres"
	"github.com/yolda/yolda/internal/store/postgres/pgtest"
)

// countingReads counts the queries that reach the database.
type countingReads struct {
	intake.Store
	reads atomic.Int64
}

func (c *countingReads) Requests(ctx context.Context, f intake.Filter) ([]intake.Request, error) {
	c.reads.Add(1)
	return c.Store.Requests(ctx, f)
}

// BenchmarkWatchHeavy is customers watching their requests on PostgreSQL:
// every operation is a GET of one of 200 requests by its owner, and one
// in writeEvery is a change of a request (a new version, invalidated).
// It reports the database queries per read and the hit rate, with the
// cache off, in the process and in Redis:
//
//	YOLDA_TEST_POSTGRES_URL=... YOLDA_TEST_REDIS_URL=... \
//	  go test -run '^$' -bench WatchHeavy -benchtime 20000x ./internal/hotread
func BenchmarkWatchHeavy(b *testing.B) {
	const requests, writeEvery = 200, 50
	pg, err := postgres.Open(ctx, pgtest.URL(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pg.Close() })
	accounts, _ := account.NewService(pg, &account.Hasher{Memory: 64, Time: 1, Threads: 1})
	owners := make([]identity.Principal, 20)
	for i := range owners {
		u, err := accounts.Add(ctx, account.NewUser{Username: "watcher" + string(rune('a'+i)), Password: "watcher-password", Role: identity.Customer})
		if err != nil {
			b.Fatal(err)
		}
		owners[i] = identity.Principal{UserID: u.ID, Username: u.Username, Role: identity.Customer}
	}
	plain := intake.NewService(pg, intake.Options{})
	b.Cleanup(plain.Close)
	var sub intake.Submission
	json.Unmarshal([]byte(submission), &sub)
	type owned struct {
		id  string
		who identity.Principal
	}
	reqs := make([]owned, requests)
	for i := range reqs {
		c, err := plain.Create(ctx, owners[i%len(owners)], sub, "")
		if err != nil {
			b.Fatal(err)
		}
		reqs[i] = owned{c.Request.ID, owners[i%len(owners)]}
	}
	backends := map[string]func(b *testing.B) cache.Cache{
		"off":    nil,
		"memory": func(*testing.B) cache.Cache { return cachememory.New(0, nil) },
		"redis": func(b *testing.B) cache.Cache {
			rdb := redistest.Client(b)
			return cacheredis.New(rdb, cacheredis.Options{Prefix: redistest.Prefix(b, rdb)})
		},
	}
	for _, name := range []string{"off", "memory", "redis"} {
		b.Run("cache="+name, func(b *testing.B) {
			db := &countingReads{Store: pg}
			var store intake.Store = db
			var dec *hotread.Requests
			if mk := backends[name]; mk != nil {
				dec, err = hotread.NewRequests(db, mk(b), hotread.Options{TTL: time.Minute})
				if err != nil {
					b.Fatal(err)
				}
				store = dec
			}
			svc := intake.NewService(store, intake.Options{})
			b.Cleanup(svc.Close)
			var reads, writes atomic.Int64
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				rnd := rand.New(rand.NewPCG(rand.Uint64(), 1))
				for pb.Next() {
					r := reqs[rnd.IntN(len(reqs))]
					if rnd.IntN(writeEvery) == 0 {
						_, err := store.UpdateRequest(ctx, r.id, func(x *intake.Request) (intake.Change, error) {
							x.Advance(time.Now().UTC().Truncate(time.Microsecond))
							x.Notes = "update " + time.Now().String()
							return intake.Change{}, nil
						})
						if err != nil {
							b.Error(err)
							return
						}
						writes.Add(1)
						continue
					}
					if _, err := svc.Get(ctx, r.who, r.id); err != nil {
						b.Error(err)
						return
					}
					reads.Add(1)
				}
			})
			took := time.Since(start).Seconds()
			b.StopTimer()
			q := float64(db.reads.Load())
			b.ReportMetric(q/float64(reads.Load()), "db-queries/read")
			b.ReportMetric(float64(reads.Load())/took, "reads/s")
			b.ReportMetric(q/took, "db-queries/s")
			b.ReportMetric(1-q/float64(reads.Load()), "hit-rate")
		})
	}
}
