package redis_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/yolda/yolda/internal/cache"
	"github.com/yolda/yolda/internal/cache/cachetest"
	"github.com/yolda/yolda/internal/cache/redis"
	"github.com/yolda/yolda/internal/redistest"
)

var ctx = context.Background()

func TestConformance(t *testing.T) {
	cachetest.Run(t, func(t *testing.T) (cache.Cache, func(time.Duration)) {
		rdb := redistest.Client(t)
		return redis.New(rdb, redis.Options{Prefix: redistest.Prefix(t, rdb)}), nil
	})
}

// Entries and tombstones expire after their ttl (Redis's clock).
func TestExpiry(t *testing.T) {
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t, rdb)
	c := redis.New(rdb, redis.Options{Prefix: prefix})
	if err := c.Fill(ctx, "k", cache.Entry{Value: []byte("v"), Version: 1}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.Invalidate(ctx, "t", 2, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]time.Duration{prefix + "0:e:k": 30 * time.Second, prefix + "0:e:t": 20 * time.Second} {
		ttl, err := rdb.PTTL(ctx, key).Result()
		if err != nil || ttl <= want-time.Second || ttl > want {
			t.Errorf("%s: TTL %v %v, want about %v", key, ttl, err, want)
		}
	}
}

// Two processes share entries and invalidations.
func TestShared(t *testing.T) {
	ra, rb := redistest.Client(t), redistest.Client(t)
	prefix := redistest.Prefix(t, ra)
	a, b := redis.New(ra, redis.Options{Prefix: prefix}), redis.New(rb, redis.Options{Prefix: prefix})
	a.Fill(ctx, "req:1", cache.Entry{Value: []byte("v1"), Version: 1}, time.Minute)
	if e, ok, _ := b.Get(ctx, "req:1"); !ok || e.Version != 1 {
		t.Fatalf("b does not see a's fill: %v %v", e, ok)
	}
	b.Invalidate(ctx, "req:1", 2, time.Minute)
	if _, ok, _ := a.Get(ctx, "req:1"); ok {
		t.Fatal("a still serves what b invalidated")
	}
}

// flaky is a connection that fails while down is set, as a network
// between this process and Redis that breaks.
type flaky struct {
	net.Conn
	down *atomic.Bool
}

func (f flaky) Read(b []byte) (int, error) {
	if f.down.Load() {
		return 0, errors.New("network down")
	}
	return f.Conn.Read(b)
}

func (f flaky) Write(b []byte) (int, error) {
	if f.down.Load() {
		return 0, errors.New("network down")
	}
	return f.Conn.Write(b)
}

func flakyClient(t *testing.T, addr string, db int, down *atomic.Bool) *goredis.Client {
	rdb := goredis.NewClient(&goredis.Options{Addr: addr, DB: db, ContextTimeoutEnabled: true, MaxRetries: -1,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if down.Load() {
				return nil, errors.New("network down")
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return flaky{Conn: c, down: down}, nil
		}})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// A writer's process that cannot deliver its invalidation (its network
// to Redis breaks after the commit) leaves no stale entry behind once it
// reaches Redis again: its next operation moves the epoch on, and every
// process then misses what was cached before.
func TestLostInvalidationFlushesAtReconnect(t *testing.T) {
	direct := redistest.Client(t)
	prefix := redistest.Prefix(t, direct)
	opts := direct.Options()
	var down atomic.Bool
	writer := redis.New(flakyClient(t, opts.Addr, opts.DB, &down), redis.Options{Prefix: prefix, Cooldown: time.Millisecond})
	reader := redis.New(direct, redis.Options{Prefix: prefix})

	writer.Fill(ctx, "req:1", cache.Entry{Value: []byte("received"), Version: 1}, time.Minute)
	down.Store(true)
	if err := writer.Invalidate(ctx, "req:1", 2, time.Minute); !errors.Is(err, cache.ErrUnavailable) {
		t.Fatalf("invalidation with the network down: %v", err)
	}
	if !writer.Dirty() {
		t.Fatal("a lost invalidation did not leave the cache dirty")
	}
	// Meanwhile another process still sees the stale entry: the window
	// docs/operations.md states.
	if e, ok, _ := reader.Get(ctx, "req:1"); !ok || e.Version != 1 {
		t.Fatalf("reader before the flush: %v %v", e, ok)
	}
	down.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, ok, err := writer.Get(ctx, "req:1")
		if err == nil {
			if ok {
				t.Fatal("the writer's first read after reconnecting hit the stale entry")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writer still failing: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if writer.Dirty() {
		t.Error("still dirty after a successful operation")
	}
	if _, ok, _ := reader.Get(ctx, "req:1"); ok {
		t.Error("another process still serves the entry the lost invalidation was for")
	}
}

// Invalidation survives a Redis restart: a server that comes back with
// its data (AOF) after an invalidation was lost while it was down serves
// nothing stale; the writer's process moves the epoch on at once.
func TestInvalidationSurvivesRestart(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("YOLDA_REQUIRE_SERVICES") != "" {
			t.Fatal("redis-server is not installed and YOLDA_REQUIRE_SERVICES is set")
		}
		t.Skip("redis-server not installed")
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	start := func() *exec.Cmd {
		cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
			"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--logfile", filepath.Join(dir, "redis.log"))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		deadline := time.Now().Add(20 * time.Second)
		for {
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				return cmd
			}
			if time.Now().After(deadline) {
				t.Fatal("redis-server did not start")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	srv := start()
	client := func() *goredis.Client {
		rdb := goredis.NewClient(&goredis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1})
		t.Cleanup(func() { rdb.Close() })
		return rdb
	}
	writer := redis.New(client(), redis.Options{Cooldown: time.Millisecond})
	reader := redis.New(client(), redis.Options{})
	if err := writer.Fill(ctx, "req:1", cache.Entry{Value: []byte("received"), Version: 1}, time.Hour); err != nil {
		t.Fatal(err)
	}
	_ = srv.Process.Kill() // SIGKILL: the AOF holds the entry
	_ = srv.Wait()
	if err := writer.Invalidate(ctx, "req:1", 2, time.Hour); err == nil {
		t.Fatal("invalidation with Redis dead succeeded")
	}
	start()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, ok, err := writer.Get(ctx, "req:1")
		if err == nil {
			if ok {
				t.Fatal("the restarted Redis served the entry whose invalidation was lost")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writer still failing: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, ok, err := reader.Get(ctx, "req:1"); ok || err != nil {
		t.Errorf("another process after the restart: hit %v, err %v", ok, err)
	}
}
