package bus

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// sampleStats copies the broker's view of the consumer (backlog, messages
// awaiting an ack, redelivered messages) into gauges every StatsInterval
// until ctx ends. Asking the broker beats counting locally: it covers every
// process of the consumer, and messages nobody has pulled yet.
func (c *consumer) sampleStats(ctx context.Context, cons jetstream.Consumer) {
	t := time.NewTicker(c.cfg.StatsInterval)
	defer t.Stop()
	for {
		c.sample(ctx, cons)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *consumer) sample(ctx context.Context, cons jetstream.Consumer) {
	ctx, cancel := context.WithTimeout(ctx, ackTimeout)
	defer cancel()
	info, err := cons.Info(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Debug("consumer stats not sampled", "err", err)
		}
		return
	}
	m := c.b.metrics
	m.pending.WithLabelValues(c.cfg.Stream, c.cfg.Durable, "undelivered").Set(float64(info.NumPending))
	m.pending.WithLabelValues(c.cfg.Stream, c.cfg.Durable, "unacked").Set(float64(info.NumAckPending))
	m.redelivered.WithLabelValues(c.cfg.Stream, c.cfg.Durable).Set(float64(info.NumRedelivered))
}

// forgetStats drops the consumer's gauges when it stops, so a stopped
// consumer does not report a frozen backlog.
func (c *consumer) forgetStats() {
	m := c.b.metrics
	m.pending.DeleteLabelValues(c.cfg.Stream, c.cfg.Durable, "undelivered")
	m.pending.DeleteLabelValues(c.cfg.Stream, c.cfg.Durable, "unacked")
	m.redelivered.DeleteLabelValues(c.cfg.Stream, c.cfg.Durable)
}
