package redis_test

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/yolda/yolda/internal/ratelimit"
	"github.com/yolda/yolda/internal/ratelimit/ratelimittest"
	"github.com/yolda/yolda/internal/ratelimit/redis"
	"github.com/yolda/yolda/internal/redistest"
)

func TestConformance(t *testing.T) {
	ratelimittest.Run(t, func(t *testing.T, now func() time.Time) ratelimittest.Limiter {
		rdb := redistest.Client(t)
		return redis.New(rdb, redis.Options{Prefix: redistest.Prefix(t, rdb), Now: now})
	})
}

// Two limiters over two connections (two processes) spend one budget: a
// client alternating between them gets the burst once.
func TestProcessesShareBudgets(t *testing.T) {
	a, b := redistest.Client(t), redistest.Client(t)
	prefix := redistest.Prefix(t, a)
	la, lb := redis.New(a, redis.Options{Prefix: prefix}), redis.New(b, redis.Options{Prefix: prefix})
	c := ratelimit.Check{Key: "user:alternating", Limit: ratelimit.Limit{Rate: 0.001, Burst: 5}}
	passed := 0
	for i := range 10 {
		l := la
		if i%2 == 1 {
			l = lb
		}
		d, err := l.Allow(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			passed++
		}
	}
	if passed != 5 {
		t.Errorf("%d of 10 passed across two limiters, want the burst of 5", passed)
	}
}

// Without an injected clock the script reads Redis's: the refusal's wait
// is the interval less the moments the calls took.
func TestServerClock(t *testing.T) {
	rdb := redistest.Client(t)
	l := redis.New(rdb, redis.Options{Prefix: redistest.Prefix(t, rdb)})
	c := ratelimit.Check{Key: "server-clock", Limit: ratelimit.Limit{Rate: 0.001, Burst: 1}}
	if d, err := l.Allow(context.Background(), c); err != nil || !d.Allowed {
		t.Fatalf("first: %+v %v", d, err)
	}
	d, err := l.Allow(context.Background(), c)
	if err != nil || d.Allowed {
		t.Fatalf("second: %+v %v", d, err)
	}
	if d.RetryAfter > 1000*time.Second || d.RetryAfter < 990*time.Second {
		t.Errorf("retry after %v, want just under 1000s", d.RetryAfter)
	}
}

// A key lives as long as its budget is not whole, no longer.
func TestKeysExpireWhenWhole(t *testing.T) {
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t, rdb)
	l := redis.New(rdb, redis.Options{Prefix: prefix})
	c := ratelimit.Check{Key: "expiring", Limit: ratelimit.Limit{Rate: 0.1, Burst: 3}}
	l.Allow(context.Background(), c)
	l.Allow(context.Background(), c)
	ttl, err := rdb.PTTL(context.Background(), prefix+"expiring").Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 19*time.Second || ttl > 20*time.Second {
		t.Errorf("TTL %v after two of a 10s interval, want 20s", ttl)
	}
}

// Redis not answering is ErrUnavailable, and for the cooldown after it
// Redis is not dialled again.
func TestUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	var dials atomic.Int64
	rdb := goredis.NewClient(&goredis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}})
	t.Cleanup(func() { rdb.Close() })
	l := redis.New(rdb, redis.Options{Cooldown: time.Hour})
	c := ratelimit.Check{Key: "k", Limit: ratelimit.Limit{Rate: 1, Burst: 1}}
	if _, err := l.Allow(context.Background(), c); !errors.Is(err, ratelimit.ErrUnavailable) {
		t.Fatalf("Redis down: %v, want ErrUnavailable", err)
	}
	before := dials.Load()
	if before == 0 {
		t.Fatal("the first call did not try Redis")
	}
	for range 5 {
		if _, err := l.Allow(context.Background(), c); !errors.Is(err, ratelimit.ErrUnavailable) {
			t.Fatalf("in cooldown: %v", err)
		}
	}
	if dials.Load() != before {
		t.Errorf("%d more dials during the cooldown", dials.Load()-before)
	}
}

// go test -run '^$' -bench Allow ./internal/ratelimit/... (one round trip
// to the Redis of YOLDA_TEST_REDIS_URL per decision)
func BenchmarkAllow(b *testing.B) {
	rdb := redistest.Client(b)
	ratelimittest.Bench(b, redis.New(rdb, redis.Options{Prefix: redistest.Prefix(b, rdb)}))
}
