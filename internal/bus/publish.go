package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrNoMsgID is returned for a message without an id: deduplication, and so
// safe re-publishing, depends on it.
var ErrNoMsgID = errors.New("message id is required")

// ErrStreamFull is wrapped by a publish the broker refused because the
// stream is at its count or size limit (JOBS discards new messages there:
// see streamConfigs). The message was not stored; publish it again later.
var ErrStreamFull = errors.New("stream at its limit")

// storeFailed is JetStream's error code for a message the stream could not
// store (JSStreamStoreFailedF); at a limit its description says which.
const storeFailed jetstream.ErrorCode = 10077

// publishError wraps err, the broker's answer to a publish on subject, so
// that errors.Is(err, ErrStreamFull) tells a refusal at a limit.
func publishError(subject string, err error) error {
	var api *jetstream.APIError
	if errors.As(err, &api) && api.ErrorCode == storeFailed && strings.HasPrefix(api.Description, "maximum") {
		return fmt.Errorf("publish %s: %w: %w", subject, ErrStreamFull, err)
	}
	return fmt.Errorf("publish %s: %w", subject, err)
}

const (
	// batchWindow is how many messages of one batch may await their acks at
	// once: enough to keep the broker busy, few enough that concurrent
	// batches stay under asyncMaxPending.
	batchWindow = 2048
	// stallWait is how long a publish waits for room under
	// asyncMaxPending when other batches fill it.
	stallWait = 5 * time.Second
)

// Message is one message to publish. ID becomes the Nats-Msg-Id header, by
// which the stream drops a copy it already has.
type Message struct {
	ID      string
	Subject string
	Payload []byte
}

// Publish stores one message in its stream and waits for the broker's
// acknowledgement. A message the stream already had (same ID inside the
// duplicate window) is not an error.
func (b *Bus) Publish(ctx context.Context, subject, msgID string, payload []byte) error {
	if msgID == "" {
		return fmt.Errorf("publish %s: %w", subject, ErrNoMsgID)
	}
	start := time.Now()
	ack, err := b.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: payload}, jetstream.WithMsgID(msgID))
	b.metrics.publishDuration.WithLabelValues("single").Observe(time.Since(start).Seconds())
	if err != nil {
		err = publishError(subject, err)
	}
	b.metrics.observePublish(subject, ack, err)
	return err
}

// BatchError lists which messages of a batch were not confirmed by the
// broker. A failed message may still have been stored; publishing it again
// is harmless.
type BatchError struct {
	// Errs has one entry per message of the batch, nil where the broker
	// confirmed it.
	Errs []error
}

func (e *BatchError) Error() string {
	n := 0
	var first error
	for _, err := range e.Errs {
		if err != nil {
			if first == nil {
				first = err
			}
			n++
		}
	}
	return fmt.Sprintf("publish batch: %d of %d failed, first: %v", n, len(e.Errs), first)
}

// Unwrap gives the individual errors to errors.Is and errors.As.
func (e *BatchError) Unwrap() []error { return e.Errs }

// Failed reports whether message i of the batch was not confirmed.
func (e *BatchError) Failed(i int) bool { return e.Errs[i] != nil }

// Ack is the broker's confirmation of one message: the stream that holds
// it and its sequence there. A duplicate (the stream had the message
// already) names the copy the stream holds.
type Ack struct {
	Stream    string
	Seq       uint64
	Duplicate bool
}

// PublishBatch publishes msgs without waiting for each ack in turn, then
// waits for all of them: this is how the relay keeps the broker busy. It
// returns nil when every message was confirmed (stored, or already there),
// or a *BatchError saying which were not. When ctx ends it stops sending and
// waiting; messages not confirmed by then count as failed.
func (b *Bus) PublishBatch(ctx context.Context, msgs []Message) error {
	_, err := b.PublishBatchAcks(ctx, msgs)
	return err
}

// PublishBatchAcks is PublishBatch that also returns the broker's ack of
// each message (the zero Ack where it did not confirm one): the relay
// records where each message went, to tell later what a broker that lost
// its tail has lost.
func (b *Bus) PublishBatchAcks(ctx context.Context, msgs []Message) ([]Ack, error) {
	start := time.Now()
	defer func() {
		b.metrics.publishDuration.WithLabelValues("batch").Observe(time.Since(start).Seconds())
	}()

	acks := make([]Ack, len(msgs))
	errs := make([]error, len(msgs))
	futures := make([]jetstream.PubAckFuture, len(msgs))
	failed := false
	await := func(i int) {
		f := futures[i]
		if f == nil {
			return
		}
		var ack *jetstream.PubAck
		var err error
		select {
		case ack = <-f.Ok():
		case err = <-f.Err():
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			err = publishError(msgs[i].Subject, err)
			errs[i] = err
			failed = true
		} else {
			acks[i] = Ack{Stream: ack.Stream, Seq: ack.Sequence, Duplicate: ack.Duplicate}
		}
		b.metrics.observePublish(msgs[i].Subject, ack, err)
	}

	oldest := 0 // first message whose ack has not been awaited
	for i, m := range msgs {
		if err := ctx.Err(); err != nil {
			for j := i; j < len(msgs); j++ {
				errs[j] = err
			}
			failed = true
			break
		}
		if m.ID == "" {
			errs[i] = fmt.Errorf("publish %s: %w", m.Subject, ErrNoMsgID)
			failed = true
			continue
		}
		for i-oldest >= batchWindow {
			await(oldest)
			oldest++
		}
		f, err := b.js.PublishMsgAsync(&nats.Msg{Subject: m.Subject, Data: m.Payload},
			jetstream.WithMsgID(m.ID), jetstream.WithStallWait(stallWait))
		if err != nil {
			err = publishError(m.Subject, err)
			b.metrics.observePublish(m.Subject, nil, err)
			errs[i] = err
			failed = true
			continue
		}
		futures[i] = f
	}
	for ; oldest < len(msgs); oldest++ {
		await(oldest)
	}
	if failed {
		return acks, &BatchError{Errs: errs}
	}
	return acks, nil
}
