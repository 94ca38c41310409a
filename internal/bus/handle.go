package bus

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// handleBatch runs the handler on a batch of messages and settles each:
// ack, retry, back-off or dead letter, as ConsumerConfig describes.
func (c *consumer) handleBatch(msgs []jetstream.Msg) {
	live := make([]jetstream.Msg, 0, len(msgs))
	ds := make([]Delivery, 0, len(msgs))
	for _, msg := range msgs {
		d, ok := c.delivery(msg)
		if !ok || c.spent(msg, d) {
			continue
		}
		live = append(live, msg)
		ds = append(ds, d)
	}
	if len(ds) == 0 {
		return
	}

	// One budget for the batch and, if it fails, for handling its
	// deliveries alone: every one of them must be settled before the
	// broker would redeliver it.
	ctx, cancel := context.WithTimeout(c.handlerCtx, c.handlerBudget())
	defer cancel()
	start := time.Now()
	results, err := c.call(ctx, ds)
	c.handlerDuration.Observe(time.Since(start).Seconds())
	c.batchSize.Observe(float64(len(ds)))
	if err == nil && len(results) != len(ds) {
		err = fmt.Errorf("batch handler returned %d results for %d deliveries", len(results), len(ds))
	}
	switch {
	case err == nil:
	case len(ds) == 1:
		results = []error{err}
	default:
		c.log.Warn("batch not applied; handling its deliveries one by one", "size", len(ds), "err", err)
		results = c.alone(ctx, ds, err)
	}

	var acks []int
	for i, r := range results {
		if r == nil {
			acks = append(acks, i)
			continue
		}
		c.settle(live[i], ds[i], r, c.deliveryLog(ds[i]))
	}
	c.ack(live, ds, acks)
}

// alone hands each delivery of a failed batch to the handler on its own.
// Once ctx has ended, the rest fail with the batch's error without another
// call: a database that timed out the batch would time them out too.
func (c *consumer) alone(ctx context.Context, ds []Delivery, batchErr error) []error {
	results := make([]error, len(ds))
	for i := range ds {
		if ctx.Err() != nil {
			results[i] = fmt.Errorf("batch failed and no time was left to handle this delivery alone: %w", batchErr)
			continue
		}
		start := time.Now()
		r, err := c.call(ctx, ds[i:i+1])
		c.handlerDuration.Observe(time.Since(start).Seconds())
		c.batchSize.Observe(1)
		switch {
		case err != nil:
			results[i] = err
		case len(r) != 1:
			results[i] = fmt.Errorf("batch handler returned %d results for 1 delivery", len(r))
		default:
			results[i] = r[0]
		}
	}
	return results
}

// delivery reads a message's metadata. Only a JetStream delivery has any;
// anything else is logged and dropped (there is nothing to ack).
func (c *consumer) delivery(msg jetstream.Msg) (Delivery, bool) {
	md, err := msg.Metadata()
	if err != nil {
		c.log.Error("consumer got a message that is not a delivery", "subject", msg.Subject(), "err", err)
		return Delivery{}, false
	}
	d := Delivery{
		ID:           msg.Headers().Get(jetstream.MsgIDHeader),
		Subject:      msg.Subject(),
		Data:         msg.Data(),
		NumDelivered: md.NumDelivered,
		Stream:       md.Stream,
		Consumer:     md.Consumer,
		StreamSeq:    md.Sequence.Stream,
		Published:    md.Timestamp,
	}
	if d.ID == "" {
		d.ID = fmt.Sprintf("%s:%d", d.Stream, d.StreamSeq)
	}
	if d.NumDelivered > 1 {
		c.redeliveries.Inc()
	}
	return d, true
}

func (c *consumer) deliveryLog(d Delivery) *slog.Logger {
	return c.log.With("msg_id", d.ID, "subject", d.Subject, "delivery", d.NumDelivered)
}

// spent settles a delivery past MaxDeliver whose earlier deliveries used up
// the failure budget, and reports whether it did. Those earlier deliveries
// were retries, or failures left unsettled: no answer at all (handler past
// AckWait, process gone), or a dead letter that could not be stored. Such a
// delivery is dead-lettered without another go at the handler.
func (c *consumer) spent(msg jetstream.Msg, d Delivery) bool {
	if d.NumDelivered <= uint64(c.cfg.MaxDeliver) {
		return false
	}
	log := c.deliveryLog(d)
	prior, err := c.failures(d.StreamSeq, d.NumDelivered-1)
	if err != nil {
		log.Warn("retry count unknown, running the handler", "err", err)
		return false
	}
	if prior < uint64(c.cfg.MaxDeliver) {
		return false
	}
	c.deadLetter(msg, d, ErrDeliveryLimit, log)
	return true
}

// handlerBudget leaves a tenth of AckWait for the acks to reach the broker
// before it would redeliver.
func (c *consumer) handlerBudget() time.Duration {
	return c.cfg.AckWait - c.cfg.AckWait/10
}

// call runs the handler, turning a panic into an error so one bad message
// cannot take the worker (and the process) down.
func (c *consumer) call(ctx context.Context, ds []Delivery) (results []error, err error) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("handler panicked", "panic", r, "size", len(ds), "first_msg_id", ds[0].ID, "stack", string(debug.Stack()))
			results, err = nil, fmt.Errorf("handler panic: %v", r)
		}
	}()
	return c.handler(ctx, ds)
}

// ack acknowledges the deliveries at idx, all at once, each confirmed by
// the broker: when the worker moves on (or Consume returns), the broker
// knows. A lost ack means one more, harmless, delivery.
func (c *consumer) ack(msgs []jetstream.Msg, ds []Delivery, idx []int) {
	if len(idx) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), ackTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, i := range idx {
		wg.Go(func() {
			if err := msgs[i].DoubleAck(ctx); err != nil {
				c.deliveryLog(ds[i]).Warn("ack not confirmed; the message may come again", "err", err)
			}
		})
	}
	wg.Wait()
	c.consumed.WithLabelValues(outcomeAck).Add(float64(len(idx)))
}

// settle handles a delivery whose result is not nil: a retry or a failure.
func (c *consumer) settle(msg jetstream.Msg, d Delivery, herr error, log *slog.Logger) {
	if after, ok := retryAfter(herr); ok {
		lctx, cancel := context.WithTimeout(context.Background(), ackTimeout)
		defer cancel()
		if err := c.ledger.addRetry(lctx, d.StreamSeq); err != nil {
			log.Warn("retry not recorded; it will count as a failure", "err", err)
		}
		c.nak(msg, after, log)
		c.consumed.WithLabelValues(outcomeRetry).Inc()
		log.Debug("handler asked for a retry", "reason", herr, "retry_in", after)
		return
	}

	failures, err := c.failures(d.StreamSeq, d.NumDelivered)
	if err != nil {
		// Without the retry count a failure cannot be told from a retry:
		// back off and decide on a later delivery rather than dead-letter
		// on a guess.
		delay := c.cfg.backoff(1)
		log.Warn("handler failed; retry count unknown", "err", herr, "ledger_err", err, "retry_in", delay)
		c.nak(msg, delay, log)
		c.consumed.WithLabelValues(outcomeFailed).Inc()
		return
	}
	if failures >= uint64(c.cfg.MaxDeliver) {
		c.deadLetter(msg, d, herr, log)
		return
	}
	delay := c.cfg.backoff(failures)
	log.Warn("handler failed, will retry", "err", herr, "failures", failures, "retry_in", delay)
	c.nak(msg, delay, log)
	c.consumed.WithLabelValues(outcomeFailed).Inc()
}

// failures is how many of the first n deliveries of the message at seq were
// not explicit retries. The delivery being settled is never a retry, so the
// answer is at least 1.
func (c *consumer) failures(seq, n uint64) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ackTimeout)
	defer cancel()
	r, err := c.ledger.retries(ctx, seq)
	if err != nil {
		return 0, err
	}
	if r >= n {
		return 1, nil
	}
	return n - r, nil
}

func (c *consumer) nak(msg jetstream.Msg, delay time.Duration, log *slog.Logger) {
	var err error
	if delay > 0 {
		err = msg.NakWithDelay(delay)
	} else {
		err = msg.Nak()
	}
	if err != nil {
		// The message comes back after AckWait all the same.
		log.Warn("nak not sent", "err", err)
	}
}

// deadLetter hands the message to the dead-letter hook and, once the hook
// has it, terminates it so the broker never delivers it again.
func (c *consumer) deadLetter(msg jetstream.Msg, d Delivery, cause error, log *slog.Logger) {
	if c.cfg.DeadLetter != nil {
		if err := c.callDeadLetter(d, cause, log); err != nil {
			delay := c.cfg.Backoff[len(c.cfg.Backoff)-1]
			log.Error("dead letter not stored; the message is kept", "cause", cause, "err", err, "retry_in", delay)
			c.nak(msg, delay, log)
			c.consumed.WithLabelValues(outcomeFailed).Inc()
			return
		}
	}
	if err := msg.TermWithReason("dead letter"); err != nil {
		// It comes back after AckWait and is dead-lettered again.
		log.Warn("term not sent", "err", err)
	}
	c.consumed.WithLabelValues(outcomeDead).Inc()
	if c.cfg.DeadLetter == nil {
		log.Error("message dropped: failed too often and no dead-letter hook", "err", cause, "data", string(d.Data))
		return
	}
	log.Error("message dead-lettered", "err", cause)
}

func (c *consumer) callDeadLetter(d Delivery, cause error, log *slog.Logger) (err error) {
	ctx, cancel := context.WithTimeout(c.handlerCtx, deadLetterTimeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			log.Error("dead-letter hook panicked", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("dead-letter hook panic: %v", r)
		}
	}()
	return c.cfg.DeadLetter(ctx, d, cause)
}
