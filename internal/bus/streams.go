package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Streams and the subjects they hold. The outbox package names subjects
// under these prefixes.
const (
	StreamJobs   = "JOBS"
	StreamEvents = "EVENTS"

	SubjectsJobs   = "jobs.>"
	SubjectsEvents = "events.>"
)

// StreamOf names the stream that holds subject ("" for none).
func StreamOf(subject string) string {
	switch {
	case strings.HasPrefix(subject, "jobs."):
		return StreamJobs
	case strings.HasPrefix(subject, "events."):
		return StreamEvents
	}
	return ""
}

// retryBucket is the key-value bucket where consumers count the explicit
// retries of a message (see ConsumerConfig). Its keys expire on their own.
const retryBucket = "CONSUMER_RETRIES"

// streamConfigs are the declared streams, as the broker should hold them.
// Both are bounded, and what happens at a limit never loses an accepted
// request, because the database, not the broker, is the truth:
//
//   - JOBS (work queue) refuses new messages at its count or size limit
//     (DiscardNew): the relay's publish fails, the row stays unsent in the
//     outbox and is tried again later, and the refusal is counted
//     (yolda_bus_published_total{result="full"}) for an alert. A job older
//     than JobsMaxAge is dropped by the broker; the sweeper finds the
//     request still waiting with no job in the broker and commits it again.
//   - EVENTS (limits) drops its oldest events at its age, count or size
//     limit (DiscardOld): events are a log of state changes that the
//     database still holds; a consumer that falls that far behind is the
//     alert (yolda_bus_consumer_pending).
func (b *Bus) streamConfigs() []jetstream.StreamConfig {
	return []jetstream.StreamConfig{
		{
			Name:        StreamJobs,
			Description: "Yolda jobs: each message is work for one worker role, removed once acknowledged",
			Subjects:    []string{SubjectsJobs},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    b.cfg.Replicas,
			Duplicates:  b.cfg.DuplicateWindow,
			MaxAge:      b.cfg.JobsMaxAge,
			MaxBytes:    b.cfg.JobsMaxBytes,
			MaxMsgs:     b.cfg.JobsMaxMsgs,
			Discard:     jetstream.DiscardNew,
		},
		{
			Name:        StreamEvents,
			Description: "Yolda events: state changes for any listener, kept for a while",
			Subjects:    []string{SubjectsEvents},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    b.cfg.Replicas,
			Duplicates:  b.cfg.DuplicateWindow,
			MaxAge:      b.cfg.EventsMaxAge,
			MaxBytes:    b.cfg.EventsMaxBytes,
			MaxMsgs:     b.cfg.EventsMaxMsgs,
			Discard:     jetstream.DiscardOld,
		},
	}
}

// EnsureStreams creates the streams and the buckets (retries, the health
// board), or updates them to the configured settings. It is idempotent and
// safe to run from every process at start. Settings the broker cannot
// change in place (retention, storage) fail with the broker's error rather
// than being recreated: a recreated stream would lose its messages.
func (b *Bus) EnsureStreams(ctx context.Context) error {
	for _, sc := range b.streamConfigs() {
		if err := untilAnswered(ctx, func() error {
			_, err := b.js.CreateOrUpdateStream(ctx, sc)
			return err
		}); err != nil {
			return fmt.Errorf("ensure stream %s: %w", sc.Name, err)
		}
	}
	retries := jetstream.KeyValueConfig{
		Bucket:      retryBucket,
		Description: "explicit retries per consumer and message, so they do not count as failures",
		TTL:         retryLedgerTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    b.cfg.Replicas,
	}
	for _, kv := range []jetstream.KeyValueConfig{retries, b.healthBucketConfig()} {
		if err := untilAnswered(ctx, func() error {
			_, err := b.js.CreateOrUpdateKeyValue(ctx, kv)
			return err
		}); err != nil {
			return fmt.Errorf("ensure bucket %s: %w", kv.Bucket, err)
		}
	}
	return nil
}

// ensureAttempts is how many times a declaration that timed out is sent
// again: a cluster that has just elected its leader, or a slow disk, can
// take longer than one API request's timeout to create a replicated
// stream. Declarations are idempotent.
const ensureAttempts = 4

// untilAnswered runs declare until it gets an answer other than a timeout,
// at most ensureAttempts times while ctx lasts.
func untilAnswered(ctx context.Context, declare func() error) error {
	var err error
	for range ensureAttempts {
		if err = declare(); err == nil || ctx.Err() != nil ||
			!(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)) {
			return err
		}
	}
	return err
}

// HasMessage reports whether the stream that holds subject still has a
// message on it: for a job on its per-request subject (JOBS is a work
// queue), whether the job is still waiting or being worked on, as opposed
// to done or lost. The sweeper asks it before committing a job again.
func (b *Bus) HasMessage(ctx context.Context, subject string) (bool, error) {
	stream := StreamOf(subject)
	if stream == "" {
		return false, fmt.Errorf("subject %s: no stream holds it", subject)
	}
	s, err := b.js.Stream(ctx, stream)
	if err != nil {
		return false, fmt.Errorf("stream %s: %w", stream, err)
	}
	_, err = s.GetLastMsgForSubject(ctx, subject)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("last message on %s: %w", subject, err)
	}
	return true, nil
}

// MessageIDAt returns the Nats-Msg-Id of the message at seq in stream, and
// whether there is one there (a work queue removes what was acknowledged;
// limits remove what is old).
func (b *Bus) MessageIDAt(ctx context.Context, stream string, seq uint64) (string, bool, error) {
	s, err := b.js.Stream(ctx, stream)
	if err != nil {
		return "", false, fmt.Errorf("stream %s: %w", stream, err)
	}
	m, err := s.GetMsg(ctx, seq)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("message %d of %s: %w", seq, stream, err)
	}
	return m.Header.Get(nats.MsgIdHdr), true, nil
}

// StreamState is how full a stream is, against its limits.
type StreamState struct {
	LastSeq           uint64
	Msgs, Bytes       uint64
	MaxMsgs, MaxBytes int64
}

// Fill is the larger of the stream's count and size against its limits
// (0 to 1; 0 when it has none).
func (s StreamState) Fill() float64 {
	f := 0.0
	if s.MaxMsgs > 0 {
		f = max(f, float64(s.Msgs)/float64(s.MaxMsgs))
	}
	if s.MaxBytes > 0 {
		f = max(f, float64(s.Bytes)/float64(s.MaxBytes))
	}
	return f
}

// Stream returns the stream's state.
func (b *Bus) Stream(ctx context.Context, stream string) (StreamState, error) {
	s, err := b.js.Stream(ctx, stream)
	if err != nil {
		return StreamState{}, fmt.Errorf("stream %s info: %w", stream, err)
	}
	info := s.CachedInfo()
	return StreamState{LastSeq: info.State.LastSeq, Msgs: info.State.Msgs, Bytes: info.State.Bytes,
		MaxMsgs: info.Config.MaxMsgs, MaxBytes: info.Config.MaxBytes}, nil
}

// StreamLastSeq is the sequence of the last message the stream ever stored
// (it does not fall when a work queue removes consumed messages). If it is
// lower than a value seen before, the broker lost its unflushed tail and
// the relay should re-publish recent rows.
func (b *Bus) StreamLastSeq(ctx context.Context, stream string) (uint64, error) {
	s, err := b.js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("stream %s info: %w", stream, err)
	}
	return s.CachedInfo().State.LastSeq, nil
}
