package bus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Plain subjects and following a stream: the broker as a fan-out medium
// between the processes of one role (the realtime gateways), for what may
// be lost. Driver positions travel on plain subjects: at most once, never
// stored, a newer one soon follows. Status changes are followed from the
// EVENTS stream by every gateway, each from its own ephemeral cursor.

// Broadcast publishes data on a plain (non-stream) subject: every current
// listener of the subject gets it, at most once; nobody else ever will.
// It does not wait for the broker.
func (b *Bus) Broadcast(subject string, data []byte) error {
	if err := b.nc.Publish(subject, data); err != nil {
		if errors.Is(err, nats.ErrConnectionClosed) {
			return ErrClosed
		}
		return fmt.Errorf("broadcast on %s: %w", subject, err)
	}
	return nil
}

// listenPending bounds what the broker's client buffers for one listener
// that is behind: past it, messages are dropped (and logged as a slow
// consumer by the connection's error handler) instead of growing memory.
const (
	listenPendingMsgs  = 1 << 16
	listenPendingBytes = 64 << 20
)

// Listen calls handle with the data of every message broadcast on subject
// (wildcards allowed) until stop is called. Messages come one at a time on
// one goroutine, in the order the broker delivers them; handle must not
// block, since a listener that falls behind loses messages.
func (b *Bus) Listen(subject string, handle func(subject string, data []byte)) (stop func(), err error) {
	sub, err := b.nc.Subscribe(subject, func(m *nats.Msg) { handle(m.Subject, m.Data) })
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", subject, err)
	}
	if err := sub.SetPendingLimits(listenPendingMsgs, listenPendingBytes); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("listen on %s: %w", subject, err)
	}
	// The subscription reaches the broker before Listen returns, so that
	// a broadcast made after it is heard.
	if err := b.nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("listen on %s: %w", subject, err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// Follow calls handle with every message stored in stream under one of
// subjects from now on, in stream order, until ctx ends. The cursor is
// this process's own (an ephemeral ordered consumer, recreated by the
// client after a gap or a reconnect, from where it was), not shared with
// other processes and not durable: what was stored before Follow started,
// or while the process was down, is not delivered. ready, if set, is
// called once the cursor exists: messages stored after that are
// delivered. handle runs on one goroutine and should not block.
func (b *Bus) Follow(ctx context.Context, stream string, subjects []string, ready func(), handle func(subject string, data []byte)) error {
	cons, err := b.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: subjects,
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return fmt.Errorf("follow %s: %w", stream, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { handle(m.Subject(), m.Data()) })
	if err != nil {
		return fmt.Errorf("follow %s: %w", stream, err)
	}
	if ready != nil {
		ready()
	}
	select {
	case <-ctx.Done():
	case <-b.closedCh:
	}
	cc.Stop()
	return nil
}
