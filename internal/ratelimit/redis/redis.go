// Package redis is the rate limiter shared by every API process: each
// budget is one Redis string (its GCRA cell) that one Lua script reads
// and writes atomically, so a client spreading its requests over many
// processes spends from one budget. The script is the arithmetic of
// ratelimit.Spend, line for line.
//
// Keys are {prefix}{check key}; each expires when its budget is whole
// again, so idle clients cost nothing. A request's checks are one script
// call, one round trip; on a Redis Cluster they must share a slot, so
// there give the keys a hash tag.
//
// When Redis does not answer, Allow returns an error wrapping
// ratelimit.ErrUnavailable, and for Options.Cooldown after a failure it
// returns that error at once instead of waiting on Redis again: the edge
// fails open or closed without adding a timeout to every request.
package redis

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/yolda/yolda/internal/ratelimit"
)

// Options configure the limiter.
type Options struct {
	// Prefix namespaces the keys (default "yolda:rl:").
	Prefix string
	// Timeout bounds one decision (default 100ms). The client must have
	// ContextTimeoutEnabled for Redis to be given up on in time.
	Timeout time.Duration
	// Cooldown is how long after a failure Redis is not asked again
	// (default 1s).
	Cooldown time.Duration
	// Now, when set, is the clock (tests); by default the script reads
	// the Redis server's clock, which every process then shares.
	Now func() time.Time
}

// Limiter is the Redis rate limiter.
type Limiter struct {
	rdb  goredis.Scripter
	opts Options
	// downUntil is when (UnixNano) Redis may be asked again after a
	// failure.
	downUntil atomic.Int64
}

// New returns a limiter over rdb; it does not own rdb.
func New(rdb goredis.Scripter, opts Options) *Limiter {
	if opts.Prefix == "" {
		opts.Prefix = "yolda:rl:"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 100 * time.Millisecond
	}
	if opts.Cooldown <= 0 {
		opts.Cooldown = time.Second
	}
	return &Limiter{rdb: rdb, opts: opts}
}

// spendScript is ratelimit.Spend. KEYS: the cells. ARGV[1]: now in µs, or
// empty for the server's clock; then, per key, its interval (µs) and
// burst. Reply: allowed (0/1), retry (µs), then per key remaining and
// reset (µs). Numbers stay below 2^53, so Lua's doubles hold them exactly;
// cells are written with %.0f, never tostring (which rounds to 14 digits).
var spendScript = goredis.NewScript(`
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
local n = #KEYS
local cur, nxt = {}, {}
local allowed, retry = true, 0
for i = 1, n do
  local t, b = tonumber(ARGV[2*i]), tonumber(ARGV[2*i+1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  cur[i] = tat
  nxt[i] = tat + t
  local over = nxt[i] - now - b*t
  if over > 0 then
    allowed = false
    if over > retry then retry = over end
  end
end
local at = nxt
if not allowed then at = cur end
local out = {allowed and 1 or 0, retry}
for i = 1, n do
  local t, b = tonumber(ARGV[2*i]), tonumber(ARGV[2*i+1])
  out[#out+1] = math.floor(math.max(0, b*t - (at[i] - now)) / t)
  out[#out+1] = at[i] - now
  if allowed then
    redis.call('SET', KEYS[i], string.format('%.0f', nxt[i]), 'PX', math.max(1, math.ceil((nxt[i] - now) / 1000)))
  end
end
return out`)

// Allow spends one request from every check's budget, or from none.
func (l *Limiter) Allow(ctx context.Context, checks ...ratelimit.Check) (ratelimit.Decision, error) {
	if time.Now().UnixNano() < l.downUntil.Load() {
		return ratelimit.Decision{}, fmt.Errorf("%w: redis failed less than %s ago", ratelimit.ErrUnavailable, l.opts.Cooldown)
	}
	keys := make([]string, len(checks))
	args := make([]any, 1, 1+2*len(checks))
	args[0] = ""
	if l.opts.Now != nil {
		args[0] = strconv.FormatInt(ratelimit.Micros(l.opts.Now()), 10)
	}
	for i, c := range checks {
		keys[i] = l.opts.Prefix + c.Key
		args = append(args, c.Limit.Interval(), max(c.Limit.Burst, 1))
	}
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	reply, err := spendScript.Run(ctx, l.rdb, keys, args...).Int64Slice()
	if err != nil {
		l.downUntil.Store(time.Now().Add(l.opts.Cooldown).UnixNano())
		return ratelimit.Decision{}, fmt.Errorf("%w: %w", ratelimit.ErrUnavailable, err)
	}
	if len(reply) != 2+2*len(checks) {
		return ratelimit.Decision{}, fmt.Errorf("%w: script answered %d numbers for %d checks", ratelimit.ErrUnavailable, len(reply), len(checks))
	}
	d := ratelimit.Decision{Allowed: reply[0] == 1, States: make([]ratelimit.State, len(checks))}
	if !d.Allowed {
		d.RetryAfter = time.Duration(reply[1]) * time.Microsecond
	}
	for i := range checks {
		d.States[i] = ratelimit.State{Remaining: int(reply[2+2*i]), Reset: time.Duration(reply[3+2*i]) * time.Microsecond}
	}
	return d, nil
}
