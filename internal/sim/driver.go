package sim

import (
	"context"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"
)

// driver is one simulated driver: it roams the city, reports where it is,
// answers offers and walks its jobs through their steps.
type driver struct {
	r     *run
	token string
	rng   *rand.Rand
	sock  *socket

	mu sync.Mutex
	// lat, lng is where it is; toLat, toLng where it heads.
	lat, lng, toLat, toLng, heading float64
	online                          bool
	offlineUntil                    time.Time
	// job is the request it is on ("" when free); deciding: an offer is
	// being looked at; arrived: at the job's location, since onSite.
	job        string
	deciding   bool
	arrived    bool
	onSite     time.Time
	onSiteSaid bool // arrived and in_service reported
	busy       bool // a REST call of the job is in flight
}

func (d *driver) start(ctx context.Context) {
	box := d.r.o.Box
	d.lat = box.MinLat + d.rng.Float64()*(box.MaxLat-box.MinLat)
	d.lng = box.MinLng + d.rng.Float64()*(box.MaxLng-box.MinLng)
	d.wander()
	if !d.r.c.expect(ctx, "availability", 200, "PUT", "/v1/drivers/me/availability", d.token, map[string]string{"availability": "online"}, nil) {
		return
	}
	d.online = true
	go d.sock.read(ctx, d.inbound)
	// Positions start at a random phase, so that a fleet's reports are
	// spread over each interval rather than all at its start.
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Duration(d.rng.Int64N(int64(d.r.o.PositionEvery)))):
	}
	tick := time.NewTicker(d.r.o.PositionEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		d.step(ctx)
	}
}

// wander picks a new point to drive to, a few km away, inside the box.
func (d *driver) wander() {
	box := d.r.o.Box
	d.toLat = clamp(d.lat+(d.rng.Float64()-0.5)*0.06, box.MinLat, box.MaxLat)
	d.toLng = clamp(d.lng+(d.rng.Float64()-0.5)*0.08, box.MinLng, box.MaxLng)
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }

// step is one interval of the driver's life: it moves, maybe goes online
// or offline, reports its position, and moves its job on.
func (d *driver) step(ctx context.Context) {
	o := d.r.o
	now := time.Now()
	cityStep := time.Duration(float64(o.PositionEvery) * o.Speedup)
	d.mu.Lock()
	switch {
	case !d.online && now.After(d.offlineUntil):
		d.online = true
		d.mu.Unlock()
		if !d.r.c.expect(ctx, "availability", 200, "PUT", "/v1/drivers/me/availability", d.token, map[string]string{"availability": "online"}, nil) {
			d.mu.Lock()
			d.online = false
			d.mu.Unlock()
		}
		return
	case !d.online:
		d.mu.Unlock()
		return
	case d.job == "" && !d.deciding && d.rng.Float64() < o.OfflineShare*cityStep.Hours():
		// A break: offline for a city hour or so.
		d.online = false
		d.offlineUntil = now.Add(time.Duration(float64(time.Hour) * (0.5 + d.rng.Float64()) / o.Speedup))
		d.mu.Unlock()
		d.r.c.expect(ctx, "availability", 200, "PUT", "/v1/drivers/me/availability", d.token, map[string]string{"availability": "offline"}, nil)
		return
	}
	if !d.arrived {
		meters := o.SpeedKmh / 3.6 * cityStep.Seconds()
		if d.moveToward(meters) {
			if d.job == "" {
				d.wander()
			} else {
				d.arrived, d.onSite = true, now
			}
		}
	}
	lat, lng, heading := d.lat, d.lng, d.heading
	var next []string
	if d.job != "" && d.arrived && !d.busy {
		// At the job: arrived and in service at once; completed once the
		// service time has passed in city time.
		switch {
		case !d.onSiteSaid:
			d.onSiteSaid = true
			next = []string{"arrived", "in_service"}
		case time.Duration(float64(now.Sub(d.onSite))*o.Speedup) >= o.ServiceTime:
			next = []string{"completed"}
		}
	}
	job := d.job
	d.mu.Unlock()

	if d.sock.send(ctx, map[string]any{"type": "location", "lat": round6(lat), "lng": round6(lng), "heading": math.Round(heading),
		"speed_kmh": o.SpeedKmh, "accuracy_m": 5, "recorded_at": time.Now().UTC().Format(time.RFC3339Nano)}) {
		d.r.t.positionsSent.Add(1)
	}
	if len(next) > 0 {
		d.progress(ctx, job, next...)
	}
}

// moveToward drives meters toward the target; true once there.
func (d *driver) moveToward(meters float64) bool {
	dy := (d.toLat - d.lat) * 111_320
	dx := (d.toLng - d.lng) * 111_320 * math.Cos(d.lat*math.Pi/180)
	dist := math.Hypot(dx, dy)
	if dist <= meters {
		d.lat, d.lng = d.toLat, d.toLng
		return true
	}
	d.heading = math.Mod(math.Atan2(dx, dy)*180/math.Pi+360, 360)
	if d.heading >= 359.5 {
		d.heading = 0
	}
	f := meters / dist
	d.lat += (d.toLat - d.lat) * f
	d.lng += (d.toLng - d.lng) * f
	return false
}

func round6(v float64) float64 { return math.Round(v*1e6) / 1e6 }

// inbound handles what the server sends the driver: offers.
func (d *driver) inbound(m inbound) {
	if m.Type != "offer" {
		return
	}
	d.r.t.offered(m.RequestID, time.Now())
	d.mu.Lock()
	if d.job != "" || d.deciding || !d.online {
		d.mu.Unlock()
		return // it lets the offer expire
	}
	d.deciding = true
	take := d.rng.Float64() < d.r.o.AcceptProbability
	delay := time.Duration(float64(d.r.o.AcceptDelay) * (0.5 + d.rng.Float64()))
	d.mu.Unlock()
	time.AfterFunc(delay, func() { d.decide(d.r.ctx, m, take) })
}

func (d *driver) decide(ctx context.Context, m inbound, take bool) {
	defer func() {
		d.mu.Lock()
		d.deciding = false
		d.mu.Unlock()
	}()
	if !take {
		d.r.c.expect(ctx, "decline", 204, "POST", "/v1/offers/"+m.OfferID+"/decline", d.token, nil, nil)
		return
	}
	code, err := d.r.c.call(ctx, "POST", "/v1/offers/"+m.OfferID+"/accept", d.token, nil, nil)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			d.r.c.errs.add("accept error")
		}
		return
	case code == 409:
		return // expired or taken meanwhile: part of the game, not an error
	case code != 200:
		d.r.c.errs.add("accept " + strconv.Itoa(code))
		return
	}
	d.mu.Lock()
	d.job, d.arrived, d.onSiteSaid = m.RequestID, false, false
	d.toLat, d.toLng = m.Location.Lat, m.Location.Lng
	d.mu.Unlock()
	d.progress(ctx, m.RequestID, "en_route")
}

// progress reports the job's next steps, in order.
func (d *driver) progress(ctx context.Context, job string, steps ...string) {
	d.mu.Lock()
	d.busy = true
	d.mu.Unlock()
	go func() {
		defer func() {
			d.mu.Lock()
			d.busy = false
			d.mu.Unlock()
		}()
		for _, s := range steps {
			if !d.r.c.expect(ctx, "progress "+s, 200, "POST", "/v1/requests/"+job+"/progress", d.token, map[string]string{"status": s}, nil) {
				d.mu.Lock()
				d.job, d.arrived = "", false // the job is gone (cancelled): free again
				d.wander()
				d.mu.Unlock()
				return
			}
			if s == "completed" {
				d.mu.Lock()
				d.job, d.arrived = "", false
				d.wander()
				d.mu.Unlock()
			}
		}
	}()
}
