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

// Consume runs the durable consumer cfg describes until ctx ends, handing
// one delivery at a time to handler, with at most cfg.Concurrency handlers
// at a time; see [ConsumerConfig] for what happens to a message after its
// handler returns. It is for handlers that call out (an insurer, a
// provider) and cannot share a transaction; [ConsumeBatch] is for those
// whose effects are database writes. cfg.BatchMax and cfg.BatchWait do not
// apply. Consume declares the consumer (create or update, so every process
// may call it at start) and needs the streams from [Bus.EnsureStreams].
//
// When ctx ends it drains: it stops pulling, hands the few messages it has
// already pulled to handlers, and waits up to cfg.DrainTimeout for handlers
// in flight, whose contexts are not cancelled. Their acks have reached the
// broker when it returns. It returns nil after a clean drain, an error if
// the consumer could not be declared, the bus was closed under it, or the
// drain timed out.
func Consume(ctx context.Context, b *Bus, cfg ConsumerConfig, handler Handler) error {
	cfg.BatchMax, cfg.BatchWait = 1, 0
	return consume(ctx, b, cfg, func(ctx context.Context, ds []Delivery) ([]error, error) {
		return []error{handler(ctx, ds[0])}, nil
	})
}

// ConsumeBatch runs the durable consumer cfg describes until ctx ends, as
// [Consume] does, but hands the handler batches: whatever deliveries are
// already buffered when a batch starts, up to cfg.BatchMax, and with a
// positive cfg.BatchWait whatever arrives within it. A lone message never
// waits for company unless BatchWait says so. Up to cfg.Concurrency
// batches are handled at once.
//
// The handler applies the effects of the whole batch in one transaction,
// each with its receipt, and returns one result per delivery; every
// delivery whose result is nil is acknowledged once the handler has
// returned, the acks sent together and each confirmed by the broker. The
// others are settled one by one as [ConsumerConfig] describes. If the
// handler reports that the shared transaction failed (or panics), each
// delivery of the batch is handed to it again alone, so that a message that
// cannot be applied fails, and is eventually dead-lettered, alone, and its
// neighbours are applied. Retry counts, MaxDeliver and dead letters are per
// delivery, exactly as with Consume.
func ConsumeBatch(ctx context.Context, b *Bus, cfg ConsumerConfig, handler BatchHandler) error {
	return consume(ctx, b, cfg, handler)
}

func consume(ctx context.Context, b *Bus, cfg ConsumerConfig, handler BatchHandler) error {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("consumer %s: %w", cfg.Durable, err)
	}
	c, err := newConsumer(ctx, b, cfg, handler)
	if err == nil {
		err = c.run(ctx)
	}
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		// Stopped before it had started (while it declared itself): as
		// clean as a stop after.
		return nil
	}
	if err != nil && b.nc.IsClosed() && !errors.Is(err, ErrClosed) {
		// Whatever failed, the cause is the closed bus; say so.
		err = fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}

// consumer is one running Consume or ConsumeBatch call: one goroutine
// pulls messages into in, and Concurrency workers each take a batch from
// in, hand it to the handler and settle it.
type consumer struct {
	b       *Bus
	cfg     ConsumerConfig
	handler BatchHandler
	log     *slog.Logger
	ledger  *retryLedger

	consumed        *prometheus.CounterVec // curried: outcome only
	redeliveries    prometheus.Counter
	handlerDuration prometheus.Observer
	batchSize       prometheus.Observer

	// in carries pulled messages to the workers. It holds a batch's worth
	// (less the one the puller holds), so that a worker finishing a batch
	// finds the next one ready; a message pulled early waits while its
	// AckWait runs, so it holds no more.
	in      chan jetstream.Msg
	workers sync.WaitGroup
	// handlerCtx carries ctx's values but not its cancellation: a handler
	// in flight at shutdown finishes its transaction. It is cancelled only
	// when the drain times out.
	handlerCtx     context.Context
	cancelHandlers context.CancelFunc
}

func newConsumer(ctx context.Context, b *Bus, cfg ConsumerConfig, handler BatchHandler) (*consumer, error) {
	ledger, err := openRetryLedger(ctx, b.js, cfg.Stream, cfg.Durable)
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", cfg.Durable, err)
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
		batchSize:       b.metrics.batchSize.With(labels),
		in:              make(chan jetstream.Msg, cfg.BatchMax-1),
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
	for range c.cfg.Concurrency {
		c.workers.Add(1)
		go c.work()
	}

	it, held, pullErr := c.pull(ctx, cons)
	stopStats()
	deadline := time.Now().Add(c.cfg.DrainTimeout)
	c.handOffBuffered(it, held, deadline)
	close(c.in) // the workers finish what is in it, then return
	drainErr := c.waitWorkers(deadline)
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

// pullBuffer is how many messages the pull iterator asks the broker for at
// a time: enough to fill a batch for every worker.
func (c *consumer) pullBuffer() int {
	return min(c.cfg.BatchMax*c.cfg.Concurrency, c.cfg.MaxAckPending)
}

// pull moves messages to the workers until ctx ends, resuming after the
// broker interrupts it. When ctx ends it returns the iterator, still
// holding what it pulled, and the message it had taken but not yet handed
// over (or nil); it returns an error when it cannot go on.
func (c *consumer) pull(ctx context.Context, cons jetstream.Consumer) (jetstream.MessagesContext, jetstream.Msg, error) {
	for {
		it, err := cons.Messages(jetstream.PullMaxMessages(c.pullBuffer()),
			jetstream.PullExpiry(pullExpiry), jetstream.PullHeartbeat(pullHeartbeat))
		if err == nil {
			var held jetstream.Msg
			held, err = c.pump(ctx, it)
			if err == nil {
				return it, held, nil
			}
		}
		if ctx.Err() != nil {
			return nil, nil, nil
		}
		if c.b.nc.IsClosed() || c.b.nc.IsDraining() {
			return nil, nil, fmt.Errorf("consumer %s: %w", c.cfg.Durable, ErrClosed)
		}
		c.log.Warn("consumer interrupted, resuming", "err", err)
		select {
		case <-ctx.Done():
			return nil, nil, nil
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

// pump takes messages off the iterator and hands them to the workers until
// ctx ends (nil, and the message taken but not handed over, if any) or the
// iterator fails (its error). While every worker is busy and in is full,
// pump waits with one message in hand and takes no more, so the iterator
// pulls no more than its buffer.
func (c *consumer) pump(ctx context.Context, it jetstream.MessagesContext) (jetstream.Msg, error) {
	for {
		msg, err := c.next(ctx, it)
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return nil, nil
			case errors.Is(err, jetstream.ErrNoHeartbeat):
				// The iterator re-issues its pull by itself.
				c.log.Debug("consumer missed heartbeats", "err", err)
				continue
			default:
				it.Stop()
				return nil, err
			}
		}
		select {
		case c.in <- msg:
		case <-ctx.Done():
			return msg, nil
		}
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

// handOffBuffered stops pulling and gives the workers the message pump
// held and those the iterator had already pulled, so they are not left to
// wait out their AckWait. It gives up at deadline (the workers are stuck);
// what is left is redelivered after its AckWait.
func (c *consumer) handOffBuffered(it jetstream.MessagesContext, held jetstream.Msg, deadline time.Time) {
	if it == nil {
		return
	}
	it.Drain()
	defer it.Stop()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	for msg := held; ; {
		if msg != nil {
			select {
			case c.in <- msg:
			case <-ctx.Done():
				return
			}
		}
		var err error
		if msg, err = it.Next(jetstream.NextContext(ctx)); err != nil {
			return // ErrMsgIteratorClosed: the buffer is empty
		}
	}
}

// work handles batches from in until it is closed and empty.
func (c *consumer) work() {
	defer c.workers.Done()
	batch := make([]jetstream.Msg, 0, c.cfg.BatchMax)
	for first := range c.in {
		batch = c.fill(append(batch[:0], first))
		c.handleBatch(batch)
		clear(batch) // let the messages go
	}
}

// fill adds to batch what is already in in and, with a BatchWait, what
// arrives within it, up to BatchMax.
func (c *consumer) fill(batch []jetstream.Msg) []jetstream.Msg {
	var linger <-chan time.Time
	if c.cfg.BatchWait > 0 && len(batch) < c.cfg.BatchMax {
		t := time.NewTimer(c.cfg.BatchWait)
		defer t.Stop()
		linger = t.C
	}
	for len(batch) < c.cfg.BatchMax {
		if linger == nil {
			select {
			case msg, ok := <-c.in:
				if !ok {
					return batch
				}
				batch = append(batch, msg)
				continue
			default:
				return batch
			}
		}
		select {
		case msg, ok := <-c.in:
			if !ok {
				return batch
			}
			batch = append(batch, msg)
		case <-linger:
			return batch
		}
	}
	return batch
}

// waitWorkers waits for the workers until deadline, then makes sure the
// naks and terms they sent (acks are confirmed already) reached the broker.
func (c *consumer) waitWorkers(deadline time.Time) error {
	done := make(chan struct{})
	go func() {
		c.workers.Wait()
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
