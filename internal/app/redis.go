package app

import (
	"context"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/yolda/yolda/internal/cache"
	cachememory "github.com/yolda/yolda/internal/cache/memory"
	cacheredis "github.com/yolda/yolda/internal/cache/redis"
	"github.com/yolda/yolda/internal/dispatch"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/hotread"
	"github.com/yolda/yolda/internal/httpapi"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/ratelimit"
	"github.com/yolda/yolda/internal/ratelimit/memory"
	ratelimitredis "github.com/yolda/yolda/internal/ratelimit/redis"
)

// connectRedis opens the one Redis client of the process (position index,
// rate limits, cache), when YOLDA_REDIS_URL is set. Context deadlines are
// honoured, so each use bounds its own calls (the limiter gives Redis
// 100 ms, never a request's whole budget). A Redis that does not answer
// at start stops the process, as the other stores do; one that goes away
// later costs what each use says (docs/operations.md).
func (p *process) connectRedis(ctx context.Context) error {
	if p.cfg.RedisURL == "" {
		return nil
	}
	opts, err := goredis.ParseURL(p.cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("redis-url: %w", err)
	}
	opts.ContextTimeoutEnabled = true
	opts.DialTimeout = 2 * time.Second
	rdb := goredis.NewClient(opts)
	p.onClose(func() { _ = rdb.Close() })
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("connect redis: %w", err)
	}
	p.redis = rdb
	return nil
}

// rateLimits are the edge's budgets, from the settings, and the limiter
// that keeps them: in the process, or in Redis for every API process.
func (p *process) rateLimits() (ratelimit.Policies, httpapi.Limiter, error) {
	ps := httpapi.DefaultRateLimits(ratelimit.Limit{Rate: p.cfg.UserRate, Burst: p.cfg.UserBurst},
		ratelimit.Limit{Rate: p.cfg.IPRate, Burst: p.cfg.IPBurst})
	if err := ps.Apply(p.cfg.RateLimits); err != nil {
		return nil, nil, fmt.Errorf("rate-limits: %w", err)
	}
	if p.redis == nil {
		return ps, memory.New(nil), nil
	}
	return ps, ratelimitredis.New(p.redis, ratelimitredis.Options{}), nil
}

// hotStores are the ports that read and change what the hot-read cache
// holds: the operational store behind the cache, or the store itself when
// the cache is off.
type hotStores struct {
	requests intake.Store
	drivers  fleet.Store
	dispatch dispatch.Store
}

// hotReads builds them. The cache is Redis's when Redis is configured, the
// process's own on SQLite (whose data dir one process alone may open, so
// every change passes through it), and off on PostgreSQL without Redis:
// processes sharing a database must share the cache, or one would serve
// what another changed.
func (p *process) hotReads() (hotStores, error) {
	plain := hotStores{requests: p.store, drivers: p.store, dispatch: p.store}
	var c cache.Cache
	switch {
	case p.cfg.CacheTTL <= 0:
		p.log.Info("hot-read cache off", "reason", "cache-ttl is 0")
		return plain, nil
	case p.redis != nil:
		c = cacheredis.New(p.redis, cacheredis.Options{})
	case p.store.engine == "sqlite":
		c = cachememory.New(0, nil)
	default:
		p.log.Info("hot-read cache off", "reason", "several processes may share PostgreSQL: set YOLDA_REDIS_URL for a shared cache")
		return plain, nil
	}
	opts := hotread.Options{TTL: p.cfg.CacheTTL, Logger: p.log, Registerer: p.registry}
	requests, err := hotread.NewRequests(p.store, c, opts)
	if err != nil {
		return hotStores{}, err
	}
	drivers, err := hotread.NewDrivers(p.store, c, opts)
	if err != nil {
		return hotStores{}, err
	}
	disp, err := hotread.NewDispatch(p.store, c, opts)
	if err != nil {
		return hotStores{}, err
	}
	p.log.Info("hot-read cache ready", "engine", map[bool]string{true: "redis", false: "memory"}[p.redis != nil], "ttl", p.cfg.CacheTTL)
	return hotStores{requests: requests, drivers: drivers, dispatch: disp}, nil
}
