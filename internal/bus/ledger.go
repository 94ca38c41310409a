package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// retryLedgerTTL is how long a message's retry count is kept after its last
// retry. A message that is still failing after that long without a retry
// has its old retries counted as failures, which can only bring its dead
// letter earlier, never lose it.
const retryLedgerTTL = 7 * 24 * time.Hour

// retryLedger counts the explicit retries of each message per consumer.
//
// It exists because the broker counts every redelivery alike: a NAK with a
// delay raises the delivery count just as a failure does, so the broker's
// own MaxDeliver would dead-letter a job that was only waiting for a
// breaker to close. Failures are NumDelivered minus retries. The ledger is
// written on a retry and read on a failure, so a message that succeeds
// first time never touches it. It lives in the broker, so every process of
// a role sees the same counts and a restart loses none.
type retryLedger struct {
	kv     jetstream.KeyValue
	prefix string // "<stream>.<consumer>."
}

func openRetryLedger(ctx context.Context, js jetstream.JetStream, stream, consumer string) (*retryLedger, error) {
	kv, err := js.KeyValue(ctx, retryBucket)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s (run EnsureStreams first): %w", retryBucket, err)
	}
	return &retryLedger{kv: kv, prefix: stream + "." + consumer + "."}, nil
}

func (l *retryLedger) key(seq uint64) string { return l.prefix + strconv.FormatUint(seq, 10) }

// retries is how many times the message at seq was explicitly retried.
func (l *retryLedger) retries(ctx context.Context, seq uint64) (uint64, error) {
	e, err := l.kv.Get(ctx, l.key(seq))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read retries of %d: %w", seq, err)
	}
	n, err := strconv.ParseUint(string(e.Value()), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read retries of %d: %w", seq, err)
	}
	return n, nil
}

// addRetry counts one more retry of the message at seq. Two deliveries of
// one message can overlap (AckWait ran out under a slow handler), so the
// count is updated by compare-and-set.
func (l *retryLedger) addRetry(ctx context.Context, seq uint64) error {
	key := l.key(seq)
	for range 5 {
		e, err := l.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			_, err = l.kv.Create(ctx, key, []byte("1"))
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue
			}
			return err
		}
		if err != nil {
			return err
		}
		n, err := strconv.ParseUint(string(e.Value()), 10, 64)
		if err != nil {
			n = 0 // unreadable: start again rather than block retries
		}
		_, err = l.kv.Update(ctx, key, []byte(strconv.FormatUint(n+1, 10)), e.Revision())
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		return err
	}
	return fmt.Errorf("count retry of %d: too many concurrent updates", seq)
}
