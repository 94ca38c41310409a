package bus

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrDeliveryLimit is given to the dead-letter hook for a message that has
// used up MaxDeliver when the last failure's error is not known: its
// deliveries ended without an answer (the handler ran past AckWait, or the
// process died), or an earlier call of the hook failed.
var ErrDeliveryLimit = errors.New("delivery limit reached; last error unknown")

// Delivery is one delivery of a message to a handler.
type Delivery struct {
	// ID is the message's Nats-Msg-Id (the outbox id). Handlers make
	// themselves idempotent with it. A message published without one gets
	// "<stream>:<sequence>", which is stable for the message's lifetime.
	ID      string
	Subject string
	Data    []byte
	// NumDelivered counts the broker's deliveries of this message to this
	// consumer, this one included: 1 on the first. Explicit retries
	// ([Retry]) count here too, though not towards MaxDeliver.
	NumDelivered uint64
	Stream       string
	Consumer     string
	// StreamSeq is the message's sequence in its stream.
	StreamSeq uint64
	// Published is when the stream stored the message.
	Published time.Time
}

// Handler processes one delivery. It returns nil only once its own
// transaction has committed: the message is acknowledged after that, and
// never before. Any other outcome may deliver the message again, so a
// handler must be idempotent (keyed by Delivery.ID). Its context ends when
// AckWait is nearly spent; it does not end when the consumer shuts down, so
// a handler in flight gets to finish.
type Handler func(ctx context.Context, d Delivery) error

// BatchHandler applies the effects of several deliveries together.
// A non-nil error means the shared transaction did not commit: the
// framework retries each delivery alone (a batch of one) so that a
// poison message is retried and dead-lettered alone. With a nil error,
// results[i] is the outcome of ds[i] exactly as a Handler's return
// value: nil (applied or already applied: ack), an error wrapping
// Retry(d) (not a failure), or a failure.
//
// Like a Handler, it returns only once its transaction has committed, and
// it must be idempotent per delivery (keyed by Delivery.ID): a batch may
// hold a message already applied by an earlier delivery, or the same
// message twice. For a batch of one, a non-nil error is that delivery's
// outcome. Its context ends when AckWait is nearly spent.
type BatchHandler func(ctx context.Context, ds []Delivery) (results []error, err error)

// retryError asks for a delayed redelivery that is not a failure.
type retryError struct{ after time.Duration }

func (e *retryError) Error() string { return fmt.Sprintf("retry in %s", e.after) }

// Retry returns an error that asks for the message again after the given
// delay without counting a failure: for a handler that could not try at all
// (an insurer's breaker is open, no driver is free yet). It may be wrapped
// to say why: fmt.Errorf("insurer %s breaker open: %w", name, bus.Retry(d)).
// Retries are not limited by MaxDeliver; the domain bounds them (an
// insurer's patience, an offer's deadline).
func Retry(after time.Duration) error { return &retryError{after: after} }

// retryAfter reports whether err asks for a retry, and after how long.
func retryAfter(err error) (time.Duration, bool) {
	var r *retryError
	if errors.As(err, &r) {
		return r.after, true
	}
	return 0, false
}
