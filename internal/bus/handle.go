package bus

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// handle runs the handler on one message and settles it: ack, retry,
// back-off or dead letter, as ConsumerConfig describes.
func (c *consumer) handle(msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		// Only a JetStream delivery has metadata; there is nothing to ack.
		c.log.Error("consumer got a message that is not a delivery", "subject", msg.Subject(), "err", err)
		return
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
	log := c.log.With("msg_id", d.ID, "subject", d.Subject, "delivery", d.NumDelivered)
	if d.NumDelivered > 1 {
		c.redeliveries.Inc()
	}

	// A delivery past MaxDeliver means earlier ones were retries, or
	// failures left unsettled: no answer at all (handler past AckWait,
	// process gone), or a dead letter that could not be stored. Settle
	// those now, before the handler gets another go.
	if d.NumDelivered > uint64(c.cfg.MaxDeliver) {
		prior, err := c.failures(d.StreamSeq, d.NumDelivered-1)
		if err != nil {
			log.Warn("retry count unknown, running the handler", "err", err)
		} else if prior >= uint64(c.cfg.MaxDeliver) {
			c.deadLetter(msg, d, ErrDeliveryLimit, log)
			return
		}
	}

	start := time.Now()
	hctx, cancel := context.WithTimeout(c.handlerCtx, c.handlerBudget())
	err = c.call(hctx, d, log)
	cancel()
	c.handlerDuration.Observe(time.Since(start).Seconds())
	c.settle(msg, d, err, log)
}

// handlerBudget leaves a tenth of AckWait for the ack to reach the broker
// before it would redeliver.
func (c *consumer) handlerBudget() time.Duration {
	return c.cfg.AckWait - c.cfg.AckWait/10
}

// call runs the handler, turning a panic into an error so one bad message
// cannot take the worker (and the process) down.
func (c *consumer) call(ctx context.Context, d Delivery, log *slog.Logger) (err error) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("handler panicked", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("handler panic: %v", r)
		}
	}()
	return c.handler(ctx, d)
}

func (c *consumer) settle(msg jetstream.Msg, d Delivery, herr error, log *slog.Logger) {
	if herr == nil {
		actx, cancel := context.WithTimeout(context.Background(), ackTimeout)
		defer cancel()
		// Confirmed ack: when the worker moves on (or Consume returns),
		// the broker knows. A lost ack means one more, harmless, delivery.
		if err := msg.DoubleAck(actx); err != nil {
			log.Warn("ack not confirmed; the message may come again", "err", err)
		}
		c.consumed.WithLabelValues(outcomeAck).Inc()
		return
	}

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
