// Package redis is the cache shared by every process: each entry is one
// hash (v: its version, d: its value; a tombstone has no d), and every
// operation is one Lua script, so the version rules of cache.Cache hold
// under writers in many processes.
//
// Keys are {prefix}{epoch}:e:{key} and, for scoped entries,
// {prefix}{epoch}:s:{scope}:{key} under the generation {prefix}{epoch}:g:{scope}.
// The epoch ({prefix}epoch) is what keeps an invalidation from being lost:
// when one cannot be delivered (Redis down, restarting, unreachable from
// this process), the cache is marked dirty, this process reads the
// database meanwhile, and the first operation that reaches Redis again
// moves the epoch on, which leaves every entry written before behind
// (they expire unread). So a Redis that restarts with its data (AOF) or
// after missing invalidations serves nothing stale, and one that restarts
// empty is simply empty. Scripts touch keys they are not given; on a
// Redis Cluster put a hash tag in the prefix.
package redis

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/yolda/yolda/internal/cache"
)

// Options configure the cache.
type Options struct {
	// Prefix namespaces the keys (default "yolda:cache:").
	Prefix string
	// Timeout bounds one operation (default 100ms); the client must have
	// ContextTimeoutEnabled.
	Timeout time.Duration
	// Cooldown is how long after a failure Redis is not asked again
	// (default 1s): reads go to the database meanwhile.
	Cooldown time.Duration
}

// Cache is the Redis cache.
type Cache struct {
	rdb      goredis.Scripter
	opts     Options
	epochKey string
	// failed counts invalidations and bumps not delivered; flushed is the
	// count that the last move of the epoch covered. While failed >
	// flushed the cache is dirty: the next operation that reaches Redis
	// moves the epoch on first. (A failure during that operation is not
	// covered by it: it counts after the count the operation read.)
	failed    atomic.Int64
	flushed   atomic.Int64
	downUntil atomic.Int64
}

var _ cache.Cache = (*Cache)(nil)

// New returns a cache over rdb; it does not own rdb.
func New(rdb goredis.Scripter, opts Options) *Cache {
	if opts.Prefix == "" {
		opts.Prefix = "yolda:cache:"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 100 * time.Millisecond
	}
	if opts.Cooldown <= 0 {
		opts.Cooldown = time.Second
	}
	return &Cache{rdb: rdb, opts: opts, epochKey: opts.Prefix + "epoch"}
}

// Every script: KEYS[1] the epoch key; ARGV[1] the prefix, ARGV[2] "1" to
// move the epoch on first; then its own arguments.
const preamble = `
local e
if ARGV[2] == '1' then e = redis.call('INCR', KEYS[1]) else e = tonumber(redis.call('GET', KEYS[1]) or '0') end
local base = ARGV[1] .. e .. ':'
`

// get: ARGV[3] key. Reply: {version, value} or {}.
var getScript = goredis.NewScript(preamble + `
local r = redis.call('HMGET', base .. 'e:' .. ARGV[3], 'v', 'd')
if not r[2] then return {} end
return {r[1], r[2]}`)

// fill: ARGV[3] key, ARGV[4] version, ARGV[5] value, ARGV[6] ttl (ms).
var fillScript = goredis.NewScript(preamble + `
local k = base .. 'e:' .. ARGV[3]
local cur = redis.call('HGET', k, 'v')
if cur and tonumber(cur) > tonumber(ARGV[4]) then return 0 end
redis.call('HSET', k, 'v', ARGV[4], 'd', ARGV[5])
redis.call('PEXPIRE', k, ARGV[6])
return 1`)

// invalidate: ARGV[3] key, ARGV[4] version, ARGV[5] ttl (ms).
var invalidateScript = goredis.NewScript(preamble + `
local k = base .. 'e:' .. ARGV[3]
local cur = redis.call('HGET', k, 'v')
if cur and tonumber(cur) >= tonumber(ARGV[4]) then return 0 end
redis.call('DEL', k)
redis.call('HSET', k, 'v', ARGV[4])
redis.call('PEXPIRE', k, ARGV[5])
return 1`)

// getScoped: ARGV[3] scope, ARGV[4] key. Reply: {gen, value?}.
var getScopedScript = goredis.NewScript(preamble + `
local g = redis.call('GET', base .. 'g:' .. ARGV[3]) or '0'
local r = redis.call('HMGET', base .. 's:' .. ARGV[3] .. ':' .. ARGV[4], 'v', 'd')
if r[2] and r[1] == g then return {g, r[2]} end
return {g}`)

// fillScoped: ARGV[3] scope, ARGV[4] key, ARGV[5] gen, ARGV[6] value,
// ARGV[7] ttl (ms).
var fillScopedScript = goredis.NewScript(preamble + `
local g = redis.call('GET', base .. 'g:' .. ARGV[3]) or '0'
if g ~= ARGV[5] then return 0 end
local k = base .. 's:' .. ARGV[3] .. ':' .. ARGV[4]
redis.call('HSET', k, 'v', ARGV[5], 'd', ARGV[6])
redis.call('PEXPIRE', k, ARGV[7])
return 1`)

// bump: ARGV[3] scope. A generation outlives every entry filled at it
// (a day against entries' minutes), so an expired one never meets them.
var bumpScript = goredis.NewScript(preamble + `
local gk = base .. 'g:' .. ARGV[3]
local g = redis.call('INCR', gk)
redis.call('PEXPIRE', gk, 86400000)
return g`)

// run runs a script with the preamble's arguments; writes (invalidations,
// bumps) that fail leave the cache dirty.
func (c *Cache) run(ctx context.Context, s *goredis.Script, write bool, args ...any) (any, error) {
	if time.Now().UnixNano() < c.downUntil.Load() {
		if write {
			c.failed.Add(1)
		}
		return nil, fmt.Errorf("%w: redis failed less than %s ago", cache.ErrUnavailable, c.opts.Cooldown)
	}
	seen := c.failed.Load()
	bump := seen > c.flushed.Load()
	flag := "0"
	if bump {
		flag = "1"
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	v, err := s.Run(ctx, c.rdb, []string{c.epochKey}, append([]any{c.opts.Prefix, flag}, args...)...).Result()
	if err != nil && err != goredis.Nil {
		c.downUntil.Store(time.Now().Add(c.opts.Cooldown).UnixNano())
		if write {
			c.failed.Add(1)
		}
		return nil, fmt.Errorf("%w: %w", cache.ErrUnavailable, err)
	}
	for bump {
		f := c.flushed.Load()
		if f >= seen || c.flushed.CompareAndSwap(f, seen) {
			break
		}
	}
	return v, nil
}

func ms(d time.Duration) int64 { return max(1, d.Milliseconds()) }

// Get implements cache.Cache. While the cache is dirty it reaches Redis
// only to move the epoch on, and so misses.
func (c *Cache) Get(ctx context.Context, key string) (cache.Entry, bool, error) {
	v, err := c.run(ctx, getScript, false, key)
	if err != nil {
		return cache.Entry{}, false, err
	}
	r, _ := v.([]any)
	if len(r) != 2 {
		return cache.Entry{}, false, nil
	}
	ver, err := strconv.ParseInt(fmt.Sprint(r[0]), 10, 64)
	if err != nil {
		return cache.Entry{}, false, fmt.Errorf("cache entry %s: version %v", key, r[0])
	}
	return cache.Entry{Value: []byte(fmt.Sprint(r[1])), Version: ver}, true, nil
}

// Fill implements cache.Cache.
func (c *Cache) Fill(ctx context.Context, key string, e cache.Entry, ttl time.Duration) error {
	_, err := c.run(ctx, fillScript, false, key, e.Version, e.Value, ms(ttl))
	return err
}

// Invalidate implements cache.Cache.
func (c *Cache) Invalidate(ctx context.Context, key string, version int64, ttl time.Duration) error {
	_, err := c.run(ctx, invalidateScript, true, key, version, ms(ttl))
	return err
}

// GetScoped implements cache.Cache.
func (c *Cache) GetScoped(ctx context.Context, scope, key string) ([]byte, int64, bool, error) {
	v, err := c.run(ctx, getScopedScript, false, scope, key)
	if err != nil {
		return nil, 0, false, err
	}
	r, _ := v.([]any)
	if len(r) == 0 {
		return nil, 0, false, fmt.Errorf("cache scope %s: empty reply", scope)
	}
	gen, err := strconv.ParseInt(fmt.Sprint(r[0]), 10, 64)
	if err != nil {
		return nil, 0, false, fmt.Errorf("cache scope %s: generation %v", scope, r[0])
	}
	if len(r) < 2 {
		return nil, gen, false, nil
	}
	return []byte(fmt.Sprint(r[1])), gen, true, nil
}

// FillScoped implements cache.Cache.
func (c *Cache) FillScoped(ctx context.Context, scope, key string, gen int64, value []byte, ttl time.Duration) error {
	_, err := c.run(ctx, fillScopedScript, false, scope, key, gen, value, ms(ttl))
	return err
}

// Bump implements cache.Cache.
func (c *Cache) Bump(ctx context.Context, scope string) error {
	_, err := c.run(ctx, bumpScript, true, scope)
	return err
}

// Dirty reports whether an invalidation is waiting to be made good by a
// move of the epoch (for tests and the readiness of the cache).
func (c *Cache) Dirty() bool { return c.failed.Load() > c.flushed.Load() }
