// Package memory is the in-process cache: one process's entries in a map.
// It is correct where one process does all the writing (the embedded
// default, whose data dir only one process may open); several processes
// sharing a database share the Redis cache instead.
package memory

import (
	"context"
	"sync"
	"time"

	"github.com/yolda/yolda/internal/cache"
)

type entry struct {
	value   []byte // nil: a tombstone
	version int64
	expires time.Time
}

// Cache holds at most Max entries; past it, expired ones go, then an
// arbitrary half (a cache may forget anything at any time).
type Cache struct {
	now func() time.Time
	max int

	mu      sync.Mutex
	entries map[string]entry
	gens    map[string]int64
}

var _ cache.Cache = (*Cache)(nil)

// New returns an empty cache of at most max entries (100 000 when 0) on
// the clock now (time.Now when nil).
func New(max int, now func() time.Time) *Cache {
	if now == nil {
		now = time.Now
	}
	if max <= 0 {
		max = 100_000
	}
	return &Cache{now: now, max: max, entries: map[string]entry{}, gens: map[string]int64{}}
}

// live returns the key's unexpired entry; the lock is held.
func (c *Cache) live(key string, now time.Time) (entry, bool) {
	e, ok := c.entries[key]
	if !ok || !now.Before(e.expires) {
		return entry{}, false
	}
	return e, true
}

func (c *Cache) put(key string, e entry, now time.Time) {
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.max {
		for k, old := range c.entries {
			if !now.Before(old.expires) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.max/2 {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = e
}

// Get implements cache.Cache.
func (c *Cache) Get(_ context.Context, key string) (cache.Entry, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.live(key, c.now())
	if !ok || e.value == nil {
		return cache.Entry{}, false, nil
	}
	return cache.Entry{Value: e.value, Version: e.version}, true, nil
}

// Fill implements cache.Cache.
func (c *Cache) Fill(_ context.Context, key string, e cache.Entry, ttl time.Duration) error {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.live(key, now); ok && cur.version > e.Version {
		return nil
	}
	c.put(key, entry{value: append([]byte{}, e.Value...), version: e.Version, expires: now.Add(ttl)}, now)
	return nil
}

// Invalidate implements cache.Cache.
func (c *Cache) Invalidate(_ context.Context, key string, version int64, ttl time.Duration) error {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.live(key, now); ok && cur.version >= version {
		return nil
	}
	c.put(key, entry{version: version, expires: now.Add(ttl)}, now)
	return nil
}

func scoped(scope, key string) string { return "\x00" + scope + "\x00" + key }

// GetScoped implements cache.Cache.
func (c *Cache) GetScoped(_ context.Context, scope, key string) ([]byte, int64, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gen := c.gens[scope]
	e, ok := c.live(scoped(scope, key), c.now())
	if !ok || e.version != gen {
		return nil, gen, false, nil
	}
	return e.value, gen, true, nil
}

// FillScoped implements cache.Cache.
func (c *Cache) FillScoped(_ context.Context, scope, key string, gen int64, value []byte, ttl time.Duration) error {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gens[scope] != gen {
		return nil
	}
	c.put(scoped(scope, key), entry{value: append([]byte{}, value...), version: gen, expires: now.Add(ttl)}, now)
	return nil
}

// Bump implements cache.Cache.
func (c *Cache) Bump(_ context.Context, scope string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gens[scope]++
	return nil
}
