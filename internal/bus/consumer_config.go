package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Defaults of [ConsumerConfig].
const (
	DefaultAckWait       = 30 * time.Second
	DefaultMaxDeliver    = 5
	DefaultConcurrency   = 1
	DefaultMaxAckPending = 10_000
	DefaultDrainTimeout  = 30 * time.Second
	DefaultStatsInterval = 15 * time.Second
	DefaultBatchMax      = 256
)

// DefaultBackoff returns the delays before redelivering a message after its
// first, second, ... failure; the last entry repeats. It is a function so
// that no caller can change the default under everyone else.
func DefaultBackoff() []time.Duration {
	return []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute}
}

// ConsumerConfig describes one durable consumer and how [Consume] runs it.
//
// Outcomes of a delivery:
//
//   - The handler returns nil: the message is acknowledged, and the ack is
//     confirmed by the broker before the worker takes the next message.
//   - The handler returns an error wrapping [Retry](d): the message is
//     NAKed with delay d. This is not a failure. The broker still counts
//     it as a delivery (JetStream has no other way to delay a message), so
//     the consumer records the retry in a key-value bucket and subtracts
//     retries from the broker's count when it checks MaxDeliver.
//   - Any other error, a panic, or running past AckWait is a failure. While
//     the message has failed fewer than MaxDeliver times it is NAKed with
//     the Backoff delay for that failure. On the MaxDeliver-th failure it
//     goes to DeadLetter and is then terminated, so it is never delivered
//     again. A message whose deliveries ended without an answer (the
//     handler overran AckWait or the process died) is dead-lettered with
//     [ErrDeliveryLimit], without running the handler, when it comes back
//     after MaxDeliver such deliveries.
//
// The broker's own MaxDeliver and BackOff are not used. MaxDeliver would
// drop a message without telling us (no dead-letter hook, and the message
// stays stuck in the work queue), and counts retries as failures. BackOff
// replaces AckWait as the handler's time budget for the first deliveries,
// so a slow handler would be redelivered while still running. The consumer
// is declared with MaxDeliver unlimited and no BackOff, and does both
// itself.
type ConsumerConfig struct {
	// Stream is the stream to consume (StreamJobs or StreamEvents).
	Stream string
	// Durable names the consumer; every process of a role uses the same
	// name and they share the work. Letters, digits, - and _ only.
	Durable string
	// FilterSubject selects the subjects consumed. On JOBS, consumers'
	// filters must not overlap (a work queue gives each message to one
	// consumer).
	FilterSubject string

	// AckWait is the handler's time budget: the broker redelivers a
	// message not answered by then. The handler's context ends a little
	// before it. Default 30s.
	AckWait time.Duration
	// MaxDeliver is how many failed deliveries a message gets before it is
	// dead-lettered; retries do not count. Default 5.
	MaxDeliver int
	// Backoff is the delay before the redelivery that follows the 1st,
	// 2nd, ... failure; the last entry repeats. Default DefaultBackoff().
	// The consumer keeps its own copy.
	Backoff []time.Duration
	// Concurrency is how many handlers (with ConsumeBatch: batches) run at
	// once in this process. Default 1.
	Concurrency int
	// BatchMax caps the deliveries ConsumeBatch hands to one call of its
	// handler. Default 256. Consume ignores it: one delivery per call.
	BatchMax int
	// BatchWait is how long ConsumeBatch waits, after a batch's first
	// delivery, for more to arrive. Zero (the default) takes only what is
	// already buffered, so a lone message never waits and batches form
	// only under load, while earlier batches commit. Consume ignores it.
	BatchWait time.Duration
	// MaxAckPending caps the messages delivered and not yet acknowledged,
	// across every process of the consumer. Messages waiting for a delayed
	// redelivery count, so it must hold a whole pile-up of retries (an
	// insurer down at peak); when full the consumer stalls. Default 10000.
	MaxAckPending int

	// DeadLetter receives a message that failed MaxDeliver times, with the
	// last error; the message is terminated once it returns nil. If it
	// returns an error the message is kept and offered again after the last
	// back-off delay. It must be idempotent (keyed by Delivery.ID): a lost
	// termination brings the message, and the call, back. Nil logs the
	// message at error level and drops it.
	DeadLetter func(ctx context.Context, d Delivery, err error) error

	// DrainTimeout bounds the wait for handlers in flight when ctx ends.
	// Default 30s.
	DrainTimeout time.Duration
	// StatsInterval is how often the consumer's pending counts are sampled
	// into metrics. Default 15s.
	StatsInterval time.Duration
}

func (c ConsumerConfig) withDefaults() ConsumerConfig {
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = DefaultMaxDeliver
	}
	if len(c.Backoff) == 0 {
		c.Backoff = DefaultBackoff()
	} else {
		c.Backoff = slices.Clone(c.Backoff)
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.BatchMax == 0 {
		c.BatchMax = DefaultBatchMax
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = DefaultMaxAckPending
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.StatsInterval == 0 {
		c.StatsInterval = DefaultStatsInterval
	}
	return c
}

// validate checks a config after defaults.
func (c ConsumerConfig) validate() error {
	var errs []error
	if c.Stream == "" {
		errs = append(errs, errors.New("stream is required"))
	}
	if c.Durable == "" || strings.ContainsFunc(c.Durable, func(r rune) bool {
		return !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) {
		errs = append(errs, fmt.Errorf("durable %q: want letters, digits, - and _", c.Durable))
	}
	if c.AckWait < time.Millisecond {
		errs = append(errs, errors.New("ack wait must be at least 1ms"))
	}
	if c.MaxDeliver < 1 {
		errs = append(errs, errors.New("max deliver must be at least 1"))
	}
	for _, d := range c.Backoff {
		if d < 0 {
			errs = append(errs, errors.New("backoff delays must not be negative"))
			break
		}
	}
	if c.Concurrency < 1 {
		errs = append(errs, errors.New("concurrency must be at least 1"))
	}
	if c.BatchMax < 1 || c.BatchMax > 10_000 {
		errs = append(errs, errors.New("batch max must be in [1, 10000]"))
	}
	if c.BatchWait < 0 || c.BatchWait > c.AckWait/2 {
		errs = append(errs, errors.New("batch wait must be in [0, ack wait / 2]"))
	}
	if c.MaxAckPending < c.Concurrency {
		errs = append(errs, errors.New("max ack pending must be at least the concurrency"))
	}
	return errors.Join(errs...)
}

// backoff is the delay after the n-th failure (n >= 1).
func (c ConsumerConfig) backoff(n uint64) time.Duration {
	if n == 0 {
		n = 1
	}
	return c.Backoff[min(n, uint64(len(c.Backoff)))-1]
}
