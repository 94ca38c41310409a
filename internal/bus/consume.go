package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	// ackTimeout bounds the wait for the broker to confirm an ack.
	ackTimeout = 5 * time.Second
	// deadLetterTimeout bounds one call of the dead-letter hook.
	deadLetterTimeout = 30 * time.Second
	// resumeDelay spaces attempts to resume after the broker interrupted
	// the consumer (deleted, leader lost, connection replaced).
	resumeDelay = time.Second
	// nextPoll bounds how long a refill the pull iterator skipped can go
	// unnoticed; see next.
	nextPoll = 250 * time.Millisecond
	// pullExpiry is how long one pull request waits at the consumer's
	// leader; pullHeartbeat is how often the leader says it still holds it.
	// Two missed heartbeats mean the request is gone (the leader died or
	// moved while our connection stayed up) and a new one must be sent.
	pullExpiry    = 5 * time.Second
	pullHeartbeat = 2 * time.Second
)

// Consume runs the durable consumer cfg describes until ctx ends, with at
// most cfg.Concurrency handlers at a time; see [ConsumerConfig] for what
// happens to a message after its handler returns. It declares the consumer
// (create or update, so every process may call it at start) and needs the
// streams from [Bus.EnsureStreams].
//
// When ctx ends it drains: it stops pulling, hands the few messages it has
// already pulled to handlers, and waits up to cfg.DrainTimeout for handlers
// in flight, whose contexts are not cancelled. Their acks have reached the
// broker when it returns. It returns nil after a clean drain, an error if
// the consumer could not be declared, the bus was closed under it, or the
// drain timed out.
func Consume(ctx context.Context, b *Bus, cfg ConsumerConfig, handler Handler) error {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("consumer %s: %w", cfg.Durable, err)
	}
	c, err := newConsumer(ctx, b, cfg, handler)
	if err != nil {
		return fmt.Errorf("consumer %s: %w", cfg.Durable, err)
	}
	err = c.run(ctx)
	if err != nil && b.nc.IsClosed() && !errors.Is(err, ErrClosed) {
		// Whatever failed, the cause is the closed bus; say so.
		err = fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}

// consumer is one running Consume call.
type consumer struct {
	b       *Bus
	cfg     ConsumerConfig
	handler Handler
	log     *slog.Logger
	ledger  *retryLedger

	consumed        *prometheus.CounterVec // curried: outcome only
	redeliveries    prometheus.Counter
	handlerDuration prometheus.Observer

	slots    chan struct{} // one per running handler
	inflight sync.WaitGroup
	// handlerCtx carries ctx's values but not its cancellation: a handler
	// in flight at shutdown finishes its transaction. It is cancelled only
	// when the drain times out.
	handlerCtx     context.Context
	cancelHandlers context.CancelFunc
}

func newConsumer(ctx context.Context, b *Bus, cfg ConsumerConfig, handler Handler) (*consumer, error) {
	ledger, err := openRetryLedger(ctx, b.js, cfg.Stream, cfg.Durable)
	if err != nil {
		return nil, err
	}
	labels := prometheus.Labels{"stream": cfg.Stream, "consumer": cfg.Durable}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	return &consumer{
		b:               b,
		cfg:             cfg,
		handler:         handler,
		log:             b.log.With("stream", cfg.Stream, "consumer", cfg.Durable),
		ledger:          ledger,
		consumed:        b.metrics.consumed.MustCurryWith(labels),
		redeliveries:    b.metrics.redeliveries.With(labels),
		handlerDuration: b.metrics.handlerDuration.With(labels),
		slots:           make(chan struct{}, cfg.Concurrency),
		handlerCtx:      hctx,
		cancelHandlers:  cancel,
	}, nil
}

func (c *consumer) run(ctx context.Context) error {
	defer c.cancelHandlers()
	cons, err := c.declare(ctx)
	if err != nil {
		return err
	}
	statsCtx, stopStats := context.WithCancel(ctx)
	statsDone := make(chan struct{})
	go func() {
		defer close(statsDone)
		c.sampleStats(statsCtx, cons)
	}()

	it, pullErr := c.pull(ctx, cons)
	stopStats()
	deadline := time.Now().Add(c.cfg.DrainTimeout)
	if it != nil {
		c.handOffBuffered(it, deadline)
	}
	drainErr := c.waitInflight(deadline)
	<-statsDone
	c.forgetStats()
	c.log.Info("consumer stopped")
	return errors.Join(pullErr, drainErr)
}

// declare creates the durable consumer or brings it to cfg. The broker's
// MaxDeliver and BackOff stay off; ConsumerConfig says why.
func (c *consumer) declare(ctx context.Context) (jetstream.Consumer, error) {
	cons, err := c.b.js.CreateOrUpdateConsumer(ctx, c.cfg.Stream, jetstream.ConsumerConfig{
		Durable:       c.cfg.Durable,
		FilterSubject: c.cfg.FilterSubject,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: c.cfg.MaxAckPending,
	})
	if err != nil {
		return nil, fmt.Errorf("declare consumer %s on %s: %w", c.cfg.Durable, c.cfg.Stream, err)
	}
	return cons, nil
}

// pull hands messages to handlers until ctx ends, resuming after the broker
// interrupts it. It returns the iterator still holding pulled messages when
// ctx ended, or an error when it cannot go on.
func (c *consumer) pull(ctx context.Context, cons jetstream.Consumer) (jetstream.MessagesContext, error) {
	for {
		// The buffer holds one batch for the handlers: a message pulled
		// early waits for a slot while its AckWait runs.
		it, err := cons.Messages(jetstream.PullMaxMessages(c.cfg.Concurrency),
			jetstream.PullExpiry(pullExpiry), jetstream.PullHeartbeat(pullHeartbeat))
		if err == nil {
			err = c.pump(ctx, it)
			if err == nil {
				return it, nil
			}
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		if c.b.nc.IsClosed() || c.b.nc.IsDraining() {
			return nil, fmt.Errorf("consumer %s: %w", c.cfg.Durable, ErrClosed)
		}
		c.log.Warn("consumer interrupted, resuming", "err", err)
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(resumeDelay):
		}
		// The consumer may have been deleted; declaring it again is
		// harmless if it was not.
		if fresh, err := c.declare(ctx); err == nil {
			cons = fresh
		} else if ctx.Err() == nil {
			c.log.Warn("consumer not declared, will try again", "err", err)
		}
	}
}

// pump takes a free handler slot, then a message, until ctx ends (nil) or
// the iterator fails (its error). Taking the slot first means no message
// is taken off the iterator without a handler ready for it.
func (c *consumer) pump(ctx context.Context, it jetstream.MessagesContext) error {
	for {
		select {
		case c.slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		msg, err := c.next(ctx, it)
		if err != nil {
			<-c.slots
			switch {
			case ctx.Err() != nil:
				return nil
			case errors.Is(err, jetstream.ErrNoHeartbeat):
				// The iterator re-issues its pull by itself.
				c.log.Debug("consumer missed heartbeats", "err", err)
				continue
			default:
				it.Stop()
				return err
			}
		}
		c.dispatch(msg)
	}
}

// next waits for the iterator's next message until ctx ends. It wakes up
// every nextPoll to call Next again: the iterator decides whether to pull
// more only when Next is called, and it skips that decision while its
// previous pull request is still being sent. If that request's messages all
// arrive in that moment, a Next that just blocks would wait for the missed
// heartbeat (30s) before pulling again, with messages waiting in the stream.
// The same wake-up notices a closed connection.
func (c *consumer) next(ctx context.Context, it jetstream.MessagesContext) (jetstream.Msg, error) {
	quiet := time.Now()
	for {
		// The iterator watches heartbeats only within one Next call: short
		// calls never see two missed. Once quiet that long, make one call
		// long enough to see them; it resets the iterator's pull accounting
		// and returns ErrNoHeartbeat, and the next call pulls afresh.
		wait := nextPoll
		if time.Since(quiet) >= 2*pullHeartbeat {
			wait = 2*pullHeartbeat + nextPoll
		}
		pctx, cancel := context.WithTimeout(ctx, wait)
		msg, err := it.Next(jetstream.NextContext(pctx))
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return msg, err
		}
		if wait > nextPoll {
			quiet = time.Now()
		}
		if c.b.nc.IsClosed() {
			// The iterator does not notice a closed connection by itself.
			return nil, ErrClosed
		}
	}
}

// handOffBuffered stops pulling and gives the messages already pulled to
// handlers, so they are not left to wait out their AckWait.
func (c *consumer) handOffBuffered(it jetstream.MessagesContext, deadline time.Time) {
	it.Drain()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	for {
		select {
		case c.slots <- struct{}{}:
		case <-ctx.Done():
			it.Stop()
			return
		}
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			<-c.slots
			it.Stop()
			return // ErrMsgIteratorClosed: the buffer is empty
		}
		c.dispatch(msg)
	}
}

func (c *consumer) dispatch(msg jetstream.Msg) {
	c.inflight.Add(1)
	go func() {
		defer c.inflight.Done()
		defer func() { <-c.slots }()
		c.handle(msg)
	}()
}

// waitInflight waits for running handlers until deadline, then makes sure
// the naks and terms they sent (acks are confirmed already) reached the
// broker.
func (c *consumer) waitInflight(deadline time.Time) error {
	done := make(chan struct{})
	go func() {
		c.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Until(deadline)):
		c.cancelHandlers()
		return fmt.Errorf("drain consumer %s: handlers still running after %s", c.cfg.Durable, c.cfg.DrainTimeout)
	}
	if c.b.nc.IsClosed() {
		return nil
	}
	if err := c.b.nc.FlushTimeout(ackTimeout); err != nil {
		return fmt.Errorf("drain consumer %s: flush: %w", c.cfg.Durable, err)
	}
	return nil
}
