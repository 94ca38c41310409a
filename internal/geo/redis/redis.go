// Package redis is the shared position index (fleet.Index) in Redis: one
// GEO set of positions (GEOADD/GEOSEARCH) and one hash per driver with its
// state and exact fix. Every write is one Lua script, so that the version
// and fix-time rules of fleet.Index hold under concurrent writers from
// many processes; Nearby is one script too (search, read states, filter,
// widen if too few passed) and costs one round trip.
//
// Keys: {prefix}geo and {prefix}d:{driver}. Driver hashes expire after
// Options.TTL without a write (the fleet reloads a driver it finds
// missing), and Nearby drops from the GEO set the members whose hash has
// expired. Scripts touch keys they are not given (the drivers' hashes), so
// on a Redis Cluster put a hash tag in the prefix ("yolda:{fleet}:").
package redis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/geo"
)

// MaxAbsLat is the largest latitude Redis GEO accepts (Web Mercator).
const MaxAbsLat = 85.05112878

// Options configure the index.
type Options struct {
	// Prefix namespaces every key (default "yolda:fleet:").
	Prefix string
	// TTL is how long a driver's entry lives without a write (default
	// 24h).
	TTL time.Duration
}

// Index is the Redis position index.
type Index struct {
	rdb    goredis.UniversalClient
	prefix string
	geoKey string
	ttlMs  int64
}

var _ fleet.Index = (*Index)(nil)

// New returns an index over rdb; it does not own rdb.
func New(rdb goredis.UniversalClient, opts Options) *Index {
	if opts.Prefix == "" {
		opts.Prefix = "yolda:fleet:"
	}
	if opts.TTL <= 0 {
		opts.TTL = 24 * time.Hour
	}
	return &Index{rdb: rdb, prefix: opts.Prefix, geoKey: opts.Prefix + "geo", ttlMs: opts.TTL.Milliseconds()}
}

func (x *Index) hashKey(id string) string { return x.prefix + "d:" + id }

// moveScript records a fix of a known driver unless it is older than the
// one held. KEYS: geo, hash. ARGV: id, lat, lng, at (µs), ttl (ms).
var moveScript = goredis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local cur = redis.call('HGET', KEYS[2], 'at')
if (not cur) or tonumber(cur) <= tonumber(ARGV[4]) then
  redis.call('HSET', KEYS[2], 'lat', ARGV[2], 'lng', ARGV[3], 'at', ARGV[4])
  redis.call('GEOADD', KEYS[1], ARGV[3], ARGV[2], ARGV[1])
end
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1`)

// stateScript applies a state unless its version is older, and then a fix
// if one is given (ARGV[6] non-empty) and is not older.
// KEYS: geo, hash. ARGV: on, busy, skills, version, ttl, id, lat, lng, at.
var stateScript = goredis.NewScript(`
local v = redis.call('HGET', KEYS[2], 'v')
if (not v) or tonumber(v) <= tonumber(ARGV[4]) then
  redis.call('HSET', KEYS[2], 'on', ARGV[1], 'busy', ARGV[2], 'sk', ARGV[3], 'v', ARGV[4])
end
if ARGV[6] ~= '' then
  local cur = redis.call('HGET', KEYS[2], 'at')
  if (not cur) or tonumber(cur) <= tonumber(ARGV[9]) then
    redis.call('HSET', KEYS[2], 'lat', ARGV[7], 'lng', ARGV[8], 'at', ARGV[9])
    redis.call('GEOADD', KEYS[1], ARGV[8], ARGV[7], ARGV[6])
  end
end
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1`)

// nearbyScript searches nearest first within a radius that starts at 1 km
// and doubles up to the one asked while too few drivers passed the
// filter: GEOSEARCH costs what the disc holds, not what COUNT asks, so a
// dense city is searched in a small disc and a sparse one in a few cheap
// rounds. Members whose hash has expired leave the GEO set on the way.
// KEYS: geo. ARGV: lng, lat, radius km, want, online, free, need, fresh
// (µs or -1), hash prefix, excluded ids...
var nearbyScript = goredis.NewScript(`
local want, radius = tonumber(ARGV[4]), tonumber(ARGV[3])
local online, free, need, fresh = ARGV[5] == '1', ARGV[6] == '1', tonumber(ARGV[7]), tonumber(ARGV[8])
local excluded = {}
for i = 10, #ARGV do excluded[ARGV[i]] = true end
local r = math.min(radius, 1)
while true do
  local res = redis.call('GEOSEARCH', KEYS[1], 'FROMLONLAT', ARGV[1], ARGV[2], 'BYRADIUS', r, 'km', 'ASC')
  local out = {}
  for _, id in ipairs(res) do
    local h = redis.call('HMGET', ARGV[9] .. id, 'on', 'busy', 'sk', 'v', 'lat', 'lng', 'at')
    if not h[4] then
      redis.call('ZREM', KEYS[1], id)
    elseif h[7] and not excluded[id]
      and (not online or h[1] == '1') and (not free or h[2] ~= '1')
      and bit.band(tonumber(h[3]), need) == need
      and (fresh < 0 or tonumber(h[7]) >= fresh) then
      out[#out + 1] = {id, h[1], h[2], h[3], h[4], h[5], h[6], h[7]}
      if #out >= want then return out end
    end
  end
  if r >= radius then return out end
  r = math.min(radius, r * 2)
end`)

// removeScript forgets a driver. KEYS: geo, hash. ARGV: id.
var removeScript = goredis.NewScript(`
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1`)

func bit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func checkLat(f fleet.Fix) error {
	if math.Abs(f.Lat) > MaxAbsLat || math.Abs(f.Lng) > 180 || math.IsNaN(f.Lat) || math.IsNaN(f.Lng) {
		return fmt.Errorf("fix of %s: position %v,%v outside what Redis GEO holds", f.DriverID, f.Lat, f.Lng)
	}
	return nil
}

// Move implements fleet.Index; many fixes share one round trip.
func (x *Index) Move(ctx context.Context, fixes ...fleet.Fix) ([]string, error) {
	for _, f := range fixes {
		if err := checkLat(f); err != nil {
			return nil, err
		}
	}
	cmds, err := x.pipelined(ctx, len(fixes), func(p goredis.Pipeliner, i int) *goredis.Cmd {
		f := fixes[i]
		return moveScript.EvalSha(ctx, p, []string{x.geoKey, x.hashKey(f.DriverID)},
			f.DriverID, ftoa(f.Lat), ftoa(f.Lng), f.At.UnixMicro(), x.ttlMs)
	})
	if err != nil {
		return nil, fmt.Errorf("redis index move: %w", err)
	}
	var unknown []string
	for i, c := range cmds {
		if n, _ := c.Int(); n == 0 {
			unknown = append(unknown, fixes[i].DriverID)
		}
	}
	return unknown, nil
}

// pipelined sends n script calls in one pipeline and, if Redis lost the
// scripts (restart, SCRIPT FLUSH), loads them and sends the batch again:
// every script is idempotent under the version and time rules.
func (x *Index) pipelined(ctx context.Context, n int, queue func(goredis.Pipeliner, int) *goredis.Cmd) ([]*goredis.Cmd, error) {
	for attempt := 0; ; attempt++ {
		cmds := make([]*goredis.Cmd, n)
		_, err := x.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i := range n {
				cmds[i] = queue(p, i)
			}
			return nil
		})
		if err != nil && attempt == 0 && goredis.HasErrorPrefix(err, "NOSCRIPT") {
			if err := x.loadScripts(ctx); err != nil {
				return nil, err
			}
			continue
		}
		return cmds, err
	}
}

func (x *Index) loadScripts(ctx context.Context) error {
	for _, s := range []*goredis.Script{moveScript, stateScript, nearbyScript, removeScript} {
		if err := s.Load(ctx, x.rdb).Err(); err != nil {
			return fmt.Errorf("load script: %w", err)
		}
	}
	return nil
}

func (x *Index) state(ctx context.Context, id string, st fleet.State, f *fleet.Fix) error {
	args := []any{bit(st.Online), bit(st.Busy), uint32(st.Skills), st.Version, x.ttlMs, "", "", "", ""}
	if f != nil {
		if err := checkLat(*f); err != nil {
			return err
		}
		args[5], args[6], args[7], args[8] = id, ftoa(f.Lat), ftoa(f.Lng), f.At.UnixMicro()
	}
	// Script.Run falls back from EVALSHA to EVAL on its own.
	return stateScript.Run(ctx, x.rdb, []string{x.geoKey, x.hashKey(id)}, args...).Err()
}

// Update implements fleet.Index.
func (x *Index) Update(ctx context.Context, f fleet.Fix, st fleet.State) error {
	if err := x.state(ctx, f.DriverID, st, &f); err != nil {
		return fmt.Errorf("redis index update %s: %w", f.DriverID, err)
	}
	return nil
}

// SetState implements fleet.Index.
func (x *Index) SetState(ctx context.Context, driverID string, st fleet.State) error {
	if err := x.state(ctx, driverID, st, nil); err != nil {
		return fmt.Errorf("redis index state %s: %w", driverID, err)
	}
	return nil
}

// Remove implements fleet.Index.
func (x *Index) Remove(ctx context.Context, driverID string) error {
	if err := removeScript.Run(ctx, x.rdb, []string{x.geoKey, x.hashKey(driverID)}, driverID).Err(); err != nil {
		return fmt.Errorf("redis index remove %s: %w", driverID, err)
	}
	return nil
}

// nearbyMargin is how many candidates beyond the limit the script returns:
// Redis orders by the distance of its rounded geohash, so drivers within a
// metre of each other may swap; the exact distances here settle it.
const nearbyMargin = 4

// Nearby implements fleet.Index.
func (x *Index) Nearby(ctx context.Context, q fleet.Query) ([]fleet.Candidate, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	fresh := int64(-1)
	if !q.FreshAfter.IsZero() {
		fresh = q.FreshAfter.UnixMicro()
	}
	args := make([]any, 0, 9+len(q.Exclude))
	// A hair wider than asked: the exact check below has the last word.
	args = append(args, ftoa(q.Center.Lng), ftoa(q.Center.Lat), ftoa(q.RadiusKm+0.002), q.Limit+nearbyMargin,
		bit(q.Online), bit(q.Free), uint32(q.Need), fresh, x.prefix+"d:")
	for _, id := range q.Exclude {
		args = append(args, id)
	}
	raw, err := nearbyScript.Run(ctx, x.rdb, []string{x.geoKey}, args...).Slice()
	if err != nil {
		return nil, fmt.Errorf("redis index nearby: %w", err)
	}
	out := make([]fleet.Candidate, 0, len(raw))
	for _, r := range raw {
		f, ok := r.([]any)
		if !ok || len(f) != 8 {
			return nil, errors.New("redis index nearby: unexpected reply")
		}
		s := make([]string, 8)
		for i, v := range f {
			s[i], _ = v.(string)
		}
		c, err := parseCandidate(s)
		if err != nil {
			return nil, err
		}
		c.DistanceKm = geo.DistanceKm(q.Center.Lat, q.Center.Lng, c.Fix.Lat, c.Fix.Lng)
		if c.DistanceKm <= q.RadiusKm {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b fleet.Candidate) int {
		if a.DistanceKm != b.DistanceKm {
			if a.DistanceKm < b.DistanceKm {
				return -1
			}
			return 1
		}
		return strings.Compare(a.DriverID, b.DriverID)
	})
	return out[:min(len(out), q.Limit)], nil
}

// parseCandidate reads id, on, busy, skills, version, lat, lng, at.
func parseCandidate(s []string) (fleet.Candidate, error) {
	st, err := parseState(s[1], s[2], s[3], s[4])
	if err != nil {
		return fleet.Candidate{}, err
	}
	f, err := parseFix(s[0], s[5], s[6], s[7])
	if err != nil {
		return fleet.Candidate{}, err
	}
	return fleet.Candidate{DriverID: s[0], State: st, Fix: f}, nil
}

func parseState(on, busy, sk, v string) (fleet.State, error) {
	skills, err1 := strconv.ParseUint(sk, 10, 32)
	version, err2 := strconv.ParseInt(v, 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return fleet.State{}, fmt.Errorf("redis index: bad state: %w", err)
	}
	return fleet.State{Online: on == "1", Busy: busy == "1", Skills: fleet.Skills(skills), Version: version}, nil
}

func parseFix(id, lat, lng, at string) (fleet.Fix, error) {
	la, err1 := strconv.ParseFloat(lat, 64)
	ln, err2 := strconv.ParseFloat(lng, 64)
	us, err3 := strconv.ParseInt(at, 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return fleet.Fix{}, fmt.Errorf("redis index: bad fix: %w", err)
	}
	return fleet.Fix{DriverID: id, Lat: la, Lng: ln, At: time.UnixMicro(us).UTC()}, nil
}

// Lookup implements fleet.Index.
func (x *Index) Lookup(ctx context.Context, ids []string) ([]fleet.Entry, error) {
	cmds := make([]*goredis.SliceCmd, len(ids))
	_, err := x.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HMGet(ctx, x.hashKey(id), "on", "busy", "sk", "v", "lat", "lng", "at")
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redis index lookup: %w", err)
	}
	out := make([]fleet.Entry, 0, len(ids))
	for i, c := range cmds {
		vals := c.Val()
		if len(vals) != 7 || vals[3] == nil {
			continue // no state: unknown driver
		}
		s := make([]string, 7)
		for j, v := range vals {
			s[j], _ = v.(string)
		}
		st, err := parseState(s[0], s[1], s[2], s[3])
		if err != nil {
			return nil, err
		}
		e := fleet.Entry{DriverID: ids[i], State: st}
		if vals[6] != nil {
			if e.Fix, err = parseFix(ids[i], s[4], s[5], s[6]); err != nil {
				return nil, err
			}
			e.HasFix = true
		}
		out = append(out, e)
	}
	return out, nil
}
