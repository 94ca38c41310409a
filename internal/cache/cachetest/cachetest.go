// Package cachetest is the conformance suite of the cache backends: the
// version rules of cache.Cache, which read-your-writes rests on.
package cachetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/cache"
)

// Backend returns an empty cache. advance, when not nil, moves the
// cache's clock (a backend on a real clock returns nil, and the expiry
// case is its own test's).
type Backend func(t *testing.T) (c cache.Cache, advance func(time.Duration))

const ttl = time.Minute

// Run runs every case against the backend.
func Run(t *testing.T, backend Backend) {
	cases := []struct {
		name string
		run  func(t *testing.T, c cache.Cache, advance func(time.Duration))
	}{
		{"MissThenFill", missThenFill},
		{"StaleFillRefused", staleFillRefused},
		{"InvalidateRefusesOlderFills", invalidateRefusesOlderFills},
		{"InvalidateKeepsNewerEntry", invalidateKeepsNewerEntry},
		{"TombstonesOnlyRise", tombstonesOnlyRise},
		{"Scoped", scopedEntries},
		{"ConcurrentFillsNewestWins", concurrentFills},
		{"KeysAreIndependent", keysAreIndependent},
		{"BinaryValues", binaryValues},
		{"Expiry", expiry},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, advance := backend(t)
			tc.run(t, c, advance)
		})
	}
}

var ctx = context.Background()

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, c cache.Cache, key string) (cache.Entry, bool) {
	t.Helper()
	e, ok, err := c.Get(ctx, key)
	must(t, err)
	return e, ok
}

func want(t *testing.T, c cache.Cache, key string, version int64, value string) {
	t.Helper()
	e, ok := get(t, c, key)
	if !ok {
		t.Fatalf("%s: miss, want version %d", key, version)
	}
	if e.Version != version || string(e.Value) != value {
		t.Fatalf("%s: version %d %q, want %d %q", key, e.Version, e.Value, version, value)
	}
}

func wantMiss(t *testing.T, c cache.Cache, key string) {
	t.Helper()
	if e, ok := get(t, c, key); ok {
		t.Fatalf("%s: hit (version %d %q), want a miss", key, e.Version, e.Value)
	}
}

func missThenFill(t *testing.T, c cache.Cache, _ func(time.Duration)) {
	wantMiss(t, c, "req:1")
	must(t, c.Fill(ctx, "req:1", cache.Entry{Value: []byte(`{"status":"received"}`), Version: 1}, ttl))
	want(t, c, "req:1", 1, `{"status":"received"}`)
	must(t, c.Fill(ctx, "req:1", cache.Entry{Value: []byte(`{"status":"dispatching"}`), Version: 2}, ttl))
	want(t, c, "req:1", 2, `{"status":"dispatching"}`)
}

// A reader that read version 1 and fills after version 2 was cached does
// not bring version 1 back.
func staleFillRefused(t *testing.T, c cache.Cache, _ func(time.Duration)) {
	must(t, c.Fill(ctx, "k", cache.Entry{Value: []byte("v2"), Version: 2}, ttl))
	must(t, c.Fill(ctx, "k", cache.Entry{Value: []byte("v1"), Version: 1}, ttl))
	want(t, c, "k", 2, "v2")
	must(t, c.Fill(ctx, "k", cache.Entry{Value: []byte("v2 again"), Version: 2}, ttl))
	want(t, c, "k", 2, "v2 again")
}

// The writer's invalidation after its commit: version 1 is gone, a
// reader that read version 1 before the commit cannot fill it back, and
// a reader of the new version can.
func invalidateRefusesOlderFills(t *testing.T, c cache.Cache, _ func(time.Duration)) {
	must(t, c.Fill(ctx, "k", cache.Entry{Value: []byte("v1"), Version: 1}, ttl))
	must(t, c.Invalidate(ctx, "k", 2, ttl))
	wantMiss(t, c, "k")
	must(t, c.Fill(ctx, "k", cache.Entry{Value: []byte("v1 late"), Version: 1}, ttl))
	wantMiss(t, c, "k")
	must(t, c.Fill(ctx, "k", cache.Entry{Value: []byte("v2"), Version: 2}, ttl))
	want(t, c, "k", 2, "v2")
	// An invalidation of a key never cached refuses old fills too.
	must(t, c.Invalidate(ctx, "cold", 5, ttl))
	must(t, c.Fill(ctx, "cold", cache.Entry{Value: []byte("v4"), Version: 4}, ttl))
	wantMiss(t, c, "cold")
}

// An invalidation that arrives after a fill of its own version (or a
// newer one) leaves the entry: it shows the change already.
func invalidateKeepsNewerEntry(t *testing.T, c cache.Cache, _ func(time.Duration)) {
	must(t, c.Fill(ctx, "k", cache.Entry{Value: []byte("v3"), Version: 3}, ttl))
	must(t, c.Invalidate(ctx, "k", 3, ttl))
	want(t, c, "k", 3, "v3")
	must(t, c.Invalidate(ctx, "k", 2, ttl))
	want(t, c, "k", 3, "v3")
}

// Invalidations arriving out of order keep the highest.
func tombstonesOnlyRise(t *testing.T, c cache.Cache, _ func(time.Duration)) {
	must(t, c.Invalidate(ctx, "k", 5, ttl))
	must(t, c.Invalidate(ctx, "k", 3, ttl))
	must(t, c.Fill(ctx, "k", cache.Entry{Value: []byte("v4"), Version: 4}, ttl))
	wantMiss(t, c, "k")
	must(t, c.Fill(ctx, "k", cache.Entry{Value: []byte("v5"), Version: 5}, ttl))
	want(t, c, "k", 5, "v5")
}

func scopedEntries(t *testing.T, c cache.Cache, _ func(time.Duration)) {
	v, gen, ok, err := c.GetScoped(ctx, "drivers", "page:1")
	must(t, err)
	if ok || v != nil {
		t.Fatalf("empty scope: hit %q", v)
	}
	must(t, c.FillScoped(ctx, "drivers", "page:1", gen, []byte("page at g"), ttl))
	v, gen2, ok, err := c.GetScoped(ctx, "drivers", "page:1")
	must(t, err)
	if !ok || string(v) != "page at g" || gen2 != gen {
		t.Fatalf("after fill: %q %v gen %d, want a hit at %d", v, ok, gen2, gen)
	}
	must(t, c.Bump(ctx, "drivers"))
	v, gen3, ok, err := c.GetScoped(ctx, "drivers", "page:1")
	must(t, err)
	if ok || gen3 == gen {
		t.Fatalf("after bump: hit %v (%q), generation %d -> %d", ok, v, gen, gen3)
	}
	// A reader that started before the bump cannot fill its old page.
	must(t, c.FillScoped(ctx, "drivers", "page:1", gen, []byte("old page"), ttl))
	if _, _, ok, _ := c.GetScoped(ctx, "drivers", "page:1"); ok {
		t.Fatal("a fill at an old generation was taken")
	}
	must(t, c.FillScoped(ctx, "drivers", "page:1", gen3, []byte("new page"), ttl))
	if v, _, ok, _ := c.GetScoped(ctx, "drivers", "page:1"); !ok || string(v) != "new page" {
		t.Fatalf("fill at the new generation: %q %v", v, ok)
	}
	// Scopes are independent, and apart from plain keys.
	if _, _, ok, _ := c.GetScoped(ctx, "insurers", "page:1"); ok {
		t.Fatal("another scope sees the page")
	}
	wantMiss(t, c, "page:1")
}

func concurrentFills(t *testing.T, c cache.Cache, _ func(time.Duration)) {
	var wg sync.WaitGroup
	for v := range 20 {
		wg.Go(func() {
			for range 5 {
				if err := c.Fill(ctx, "race", cache.Entry{Value: fmt.Appendf(nil, "v%d", v), Version: int64(v)}, ttl); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	want(t, c, "race", 19, "v19")
}

func keysAreIndependent(t *testing.T, c cache.Cache, _ func(time.Duration)) {
	must(t, c.Fill(ctx, "a", cache.Entry{Value: []byte("a"), Version: 1}, ttl))
	must(t, c.Invalidate(ctx, "b", 9, ttl))
	want(t, c, "a", 1, "a")
}

func binaryValues(t *testing.T, c cache.Cache, _ func(time.Duration)) {
	v := []byte{0, 1, 2, 255, '\n', '"'}
	must(t, c.Fill(ctx, "bin", cache.Entry{Value: v, Version: 1}, ttl))
	want(t, c, "bin", 1, string(v))
	must(t, c.Fill(ctx, "empty", cache.Entry{Value: []byte{}, Version: 1}, ttl))
	want(t, c, "empty", 1, "")
}

func expiry(t *testing.T, c cache.Cache, advance func(time.Duration)) {
	if advance == nil {
		t.Skip("the backend runs on a real clock; its own test checks expiry")
	}
	must(t, c.Fill(ctx, "k", cache.Entry{Value: []byte("v1"), Version: 1}, 10*time.Second))
	must(t, c.Invalidate(ctx, "t", 5, 10*time.Second))
	advance(9 * time.Second)
	want(t, c, "k", 1, "v1")
	advance(time.Second)
	wantMiss(t, c, "k")
	// An expired tombstone refuses nothing.
	must(t, c.Fill(ctx, "t", cache.Entry{Value: []byte("v1"), Version: 1}, ttl))
	want(t, c, "t", 1, "v1")
}
