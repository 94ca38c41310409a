package redis_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/geo"
	"github.com/yolda/yolda/internal/geo/geotest"
	"github.com/yolda/yolda/internal/geo/redis"
)

// client connects to YOLDA_TEST_REDIS_URL; without it the test skips,
// unless YOLDA_REQUIRE_SERVICES says the server must be there.
func client(t testing.TB) goredis.UniversalClient {
	t.Helper()
	url := os.Getenv("YOLDA_TEST_REDIS_URL")
	if url == "" {
		if os.Getenv("YOLDA_REQUIRE_SERVICES") != "" {
			t.Fatal("YOLDA_TEST_REDIS_URL is not set and YOLDA_REQUIRE_SERVICES is")
		}
		t.Skip("YOLDA_TEST_REDIS_URL not set")
	}
	opts, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatalf("YOLDA_TEST_REDIS_URL: %v", err)
	}
	rdb := goredis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis at %s: %v", url, err)
	}
	return rdb
}

// prefix is a fresh key namespace, deleted when the test ends.
func prefix(t testing.TB, rdb goredis.UniversalClient) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	p := "yoldatest:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, p+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
	})
	return p
}

func TestConformance(t *testing.T) {
	rdb := client(t)
	geotest.Run(t, func(t *testing.T) fleet.Index {
		return redis.New(rdb, redis.Options{Prefix: prefix(t, rdb)})
	})
}

// A driver whose hash expired is unknown to Move and leaves the GEO set at
// the next search that meets it.
func TestExpiredDriverLeaves(t *testing.T) {
	ctx := context.Background()
	rdb := client(t)
	p := prefix(t, rdb)
	x := redis.New(rdb, redis.Options{Prefix: p, TTL: time.Hour})
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	st := fleet.State{Online: true, Version: 1}
	for _, id := range []string{"d1", "d2"} {
		if err := x.Update(ctx, fleet.Fix{DriverID: id, Lat: 41.01, Lng: 28.97, At: at}, st); err != nil {
			t.Fatal(err)
		}
	}
	ttl, err := rdb.PTTL(ctx, p+"d:d1").Result()
	if err != nil || ttl <= 0 || ttl > time.Hour {
		t.Fatalf("driver hash TTL = %v, %v; want (0, 1h]", ttl, err)
	}
	rdb.Del(ctx, p+"d:d1") // what an expiry does
	got, err := x.Nearby(ctx, fleet.Query{Center: geo.Point{Lat: 41.01, Lng: 28.97}, RadiusKm: 1, Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].DriverID != "d2" {
		t.Fatalf("Nearby = %+v, want only d2", got)
	}
	if err := rdb.ZScore(ctx, p+"geo", "d1").Err(); err != goredis.Nil {
		t.Fatalf("expired driver still in the GEO set (err %v)", err)
	}
	if unknown, err := x.Move(ctx, fleet.Fix{DriverID: "d1", Lat: 41, Lng: 29, At: at.Add(time.Second)}); err != nil || len(unknown) != 1 {
		t.Fatalf("Move of an expired driver: unknown %v, err %v", unknown, err)
	}
}

func TestRefusesPolarFixes(t *testing.T) {
	rdb := client(t)
	x := redis.New(rdb, redis.Options{Prefix: prefix(t, rdb)})
	err := x.Update(context.Background(), fleet.Fix{DriverID: "d1", Lat: 89, Lng: 0, At: time.Now()}, fleet.State{Version: 1})
	if err == nil {
		t.Fatal("a latitude Redis GEO cannot hold was accepted")
	}
}

// go test -run '^$' -bench Index ./internal/geo/redis (YOLDA_TEST_REDIS_URL set)
func BenchmarkIndex(b *testing.B) {
	rdb := client(b)
	geotest.Bench(b, func(b *testing.B) fleet.Index {
		return redis.New(rdb, redis.Options{Prefix: prefix(b, rdb)})
	}, []int{1000, 10000, 100000})
}
