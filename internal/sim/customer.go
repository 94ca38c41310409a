package sim

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/yolda/yolda/internal/loadgen"
)

// customer is one simulated customer: a WebSocket open for the whole run,
// and at most one request at a time, followed over it.
type customer struct {
	r     *run
	token string
	sock  *socket
}

func (c *customer) inbound(m inbound) {
	now := time.Now()
	switch m.Type {
	case "request.status":
		if done := c.r.t.status(m.RequestID, m.Status, now); done != nil {
			c.sock.send(c.r.ctx, map[string]any{"type": "unsubscribe", "request_id": m.RequestID})
			c.r.free(done)
		}
	case "driver.location":
		// The driver's device time is the time the simulator sent it.
		c.r.t.fanout.Observe(now.Sub(m.At))
		c.r.t.positionsSeen.Add(1)
	}
}

// ask creates a request somewhere in the city and follows it.
func (c *customer) ask(ctx context.Context, rng *rand.Rand) {
	o := c.r.o
	sub := loadgen.RandomSubmission(rng, o.Insurers)
	sub.Location = loadgen.Location{
		Lat:      round6(o.Box.MinLat + rng.Float64()*(o.Box.MaxLat-o.Box.MinLat)),
		Lng:      round6(o.Box.MinLng + rng.Float64()*(o.Box.MaxLng-o.Box.MinLng)),
		Province: "İstanbul",
	}
	if sub.ServiceType == "tow" {
		sub.Destination = &loadgen.Location{
			Lat: round6(clamp(sub.Location.Lat+(rng.Float64()-0.5)*0.05, o.Box.MinLat, o.Box.MaxLat)),
			Lng: round6(clamp(sub.Location.Lng+(rng.Float64()-0.5)*0.05, o.Box.MinLng, o.Box.MaxLng)),
		}
	} else {
		sub.Destination = nil
	}
	var created struct {
		ID string `json:"id"`
	}
	at := time.Now()
	if !c.r.c.expect(ctx, "create request", 202, "POST", "/v1/requests", c.token, sub, &created) || created.ID == "" {
		c.r.free(c)
		return
	}
	c.r.t.add(created.ID, at, c)
	c.sock.send(ctx, map[string]any{"type": "subscribe", "request_id": created.ID})
}

// operator is a simulated operator's panel: every driver's positions.
type operator struct {
	r    *run
	sock *socket
}

func (op *operator) inbound(m inbound) {
	if m.Type == "driver.location" {
		op.r.t.fanoutOperator.Observe(time.Since(m.At))
	}
}
