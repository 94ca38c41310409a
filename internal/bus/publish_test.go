package bus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"
)

func TestEnsureStreams(t *testing.T) {
	forEachMode(t, func(t *testing.T, f fixture) {
		// connect ran it once already; again must change nothing.
		if err := f.bus.EnsureStreams(t.Context()); err != nil {
			t.Fatalf("second EnsureStreams: %v", err)
		}

		type want struct {
			Subjects   []string
			Retention  jetstream.RetentionPolicy
			Storage    jetstream.StorageType
			Replicas   int
			Duplicates time.Duration
			MaxAge     time.Duration
			MaxMsgs    int64
			MaxBytes   int64
			Discard    jetstream.DiscardPolicy
		}
		for name, w := range map[string]want{
			StreamJobs: {[]string{"jobs.>"}, jetstream.WorkQueuePolicy, jetstream.FileStorage, 1, 5 * time.Minute,
				24 * time.Hour, 1_000_000, 1 << 30, jetstream.DiscardNew},
			StreamEvents: {[]string{"events.>"}, jetstream.LimitsPolicy, jetstream.FileStorage, 1, 5 * time.Minute,
				7 * 24 * time.Hour, 20_000_000, 8 << 30, jetstream.DiscardOld},
		} {
			s, err := f.bus.JetStream().Stream(t.Context(), name)
			if err != nil {
				t.Fatal(err)
			}
			c := s.CachedInfo().Config
			got := want{c.Subjects, c.Retention, c.Storage, c.Replicas, c.Duplicates, c.MaxAge, c.MaxMsgs, c.MaxBytes, c.Discard}
			if diff := cmp.Diff(w, got); diff != "" {
				t.Errorf("%s config (-want +got):\n%s", name, diff)
			}
		}
		if _, err := f.bus.JetStream().KeyValue(t.Context(), retryBucket); err != nil {
			t.Errorf("retry bucket: %v", err)
		}
	})
}

func TestEnsureStreamsAppliesConfig(t *testing.T) {
	t.Parallel()
	f := setupEmbedded(t)
	f.bus.Close()

	// Reopen the same broker with new settings: the streams follow.
	g := connect(t, Config{DataDir: f.cfg.DataDir, EventsMaxAge: 48 * time.Hour, DuplicateWindow: 10 * time.Minute})
	s, err := g.bus.JetStream().Stream(t.Context(), StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	c := s.CachedInfo().Config
	if c.MaxAge != 48*time.Hour || c.Duplicates != 10*time.Minute {
		t.Errorf("EVENTS max age %s, duplicates %s; want 48h, 10m", c.MaxAge, c.Duplicates)
	}
}

// A stream declared before it had limits (unbounded, discarding old) is
// brought to the bounded declaration by EnsureStreams, keeping its
// messages.
func TestEnsureStreamsBoundsAnOldUnboundedStream(t *testing.T) {
	t.Parallel()
	f := setupEmbedded(t)
	js := f.bus.JetStream()
	if err := js.DeleteStream(t.Context(), StreamJobs); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: StreamJobs, Subjects: []string{SubjectsJobs},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage, Discard: jetstream.DiscardOld}); err != nil {
		t.Fatal(err)
	}
	publishN(t, f.bus, "jobs.test.old", "old", 3)
	if err := f.bus.EnsureStreams(t.Context()); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(t.Context(), StreamJobs)
	if err != nil {
		t.Fatal(err)
	}
	c := s.CachedInfo().Config
	if c.MaxMsgs != DefaultJobsMaxMsgs || c.MaxBytes != DefaultJobsMaxBytes || c.MaxAge != DefaultJobsMaxAge || c.Discard != jetstream.DiscardNew {
		t.Errorf("JOBS after EnsureStreams: max msgs %d, bytes %d, age %s, discard %v", c.MaxMsgs, c.MaxBytes, c.MaxAge, c.Discard)
	}
	if n := streamMsgs(t, f.bus, StreamJobs); n != 3 {
		t.Errorf("JOBS holds %d messages after the update, want the 3 it had", n)
	}
}

// At its limit JOBS refuses new jobs (nothing already stored is dropped,
// and the refusal says so, for the relay to keep the row); EVENTS drops
// its oldest events instead.
func TestStreamsAtTheirLimits(t *testing.T) {
	t.Parallel()
	f := connect(t, Config{DataDir: t.TempDir(), JobsMaxMsgs: 3, EventsMaxMsgs: 3})
	publishN(t, f.bus, "jobs.test.limit", "job", 3)
	err := f.bus.Publish(t.Context(), "jobs.test.limit", "job-4", []byte("x"))
	if !errors.Is(err, ErrStreamFull) {
		t.Fatalf("publish to a full JOBS: %v, want ErrStreamFull", err)
	}
	err = f.bus.PublishBatch(t.Context(), []Message{{ID: "job-5", Subject: "jobs.test.limit"}, {ID: "ev-x", Subject: "events.test.limit"}})
	var be *BatchError
	if !errors.As(err, &be) || !errors.Is(be.Errs[0], ErrStreamFull) || be.Errs[1] != nil {
		t.Errorf("batch to a full JOBS: %v, want the job refused as full and the event stored", err)
	}
	if n := streamMsgs(t, f.bus, StreamJobs); n != 3 {
		t.Errorf("JOBS holds %d, want the 3 stored before the limit", n)
	}
	if got := metricValue(t, f.reg, "yolda_bus_published_total", map[string]string{"stream": StreamJobs, "result": "full"}); got != 2 {
		t.Errorf("refusals counted: %v, want 2", got)
	}
	// The first job is still there: nothing accepted was dropped.
	s, _ := f.bus.JetStream().Stream(t.Context(), StreamJobs)
	if m, err := s.GetMsg(t.Context(), 1); err != nil || string(m.Data) != "job-0" {
		t.Errorf("first job: %v %v", m, err)
	}

	publishN(t, f.bus, "events.test.limit", "ev", 5)
	if n := streamMsgs(t, f.bus, StreamEvents); n != 3 {
		t.Errorf("EVENTS holds %d, want its limit of 3 (oldest dropped)", n)
	}
}

func TestPublishDeduplicates(t *testing.T) {
	forEachMode(t, func(t *testing.T, f fixture) {
		for range 2 {
			if err := f.bus.Publish(t.Context(), "jobs.test.dedup", "msg-1", []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		if n := streamMsgs(t, f.bus, StreamJobs); n != 1 {
			t.Errorf("JOBS holds %d messages, want 1", n)
		}
		if got := metricValue(t, f.reg, "yolda_bus_published_total", map[string]string{"result": "duplicate"}); got != 1 {
			t.Errorf("duplicates counted: %v, want 1", got)
		}
		if err := f.bus.Publish(t.Context(), "jobs.test.dedup", "", nil); !errors.Is(err, ErrNoMsgID) {
			t.Errorf("publish without id: %v, want ErrNoMsgID", err)
		}
		if err := f.bus.Publish(t.Context(), "nowhere.test", "msg-2", nil); err == nil {
			t.Error("publish to a subject no stream holds: no error")
		}
	})
}

func TestPublishBatch(t *testing.T) {
	forEachMode(t, func(t *testing.T, f fixture) {
		const n = 10_000
		msgs := make([]Message, n)
		for i := range msgs {
			msgs[i] = Message{ID: fmt.Sprintf("batch-%d", i), Subject: "events.test.batch", Payload: []byte("payload")}
		}
		if err := f.bus.PublishBatch(t.Context(), msgs); err != nil {
			t.Fatal(err)
		}
		if got := streamMsgs(t, f.bus, StreamEvents); got != n {
			t.Errorf("EVENTS holds %d messages, want %d", got, n)
		}
		// Again: every message is a confirmed duplicate, none stored twice.
		if err := f.bus.PublishBatch(t.Context(), msgs[:100]); err != nil {
			t.Fatal(err)
		}
		if got := streamMsgs(t, f.bus, StreamEvents); got != n {
			t.Errorf("after re-publishing, EVENTS holds %d messages, want %d", got, n)
		}
		stored := metricValue(t, f.reg, "yolda_bus_published_total", map[string]string{"stream": StreamEvents, "result": "stored"})
		if stored != n {
			t.Errorf("stored counted: %v, want %d", stored, n)
		}
	})
}

func TestPublishBatchReportsFailures(t *testing.T) {
	t.Parallel()
	f := setupEmbedded(t)
	msgs := []Message{
		{ID: "ok-1", Subject: "jobs.test.partial"},
		{ID: "", Subject: "jobs.test.partial"},
		{ID: "bad-1", Subject: "nowhere.test"},
		{ID: "ok-2", Subject: "jobs.test.partial"},
	}
	err := f.bus.PublishBatch(t.Context(), msgs)
	var be *BatchError
	if !errors.As(err, &be) {
		t.Fatalf("error %v, want a *BatchError", err)
	}
	got := []bool{be.Failed(0), be.Failed(1), be.Failed(2), be.Failed(3)}
	if diff := cmp.Diff([]bool{false, true, true, false}, got); diff != "" {
		t.Errorf("failed messages (-want +got):\n%s", diff)
	}
	if !errors.Is(err, ErrNoMsgID) {
		t.Errorf("error %v does not wrap ErrNoMsgID", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err = f.bus.PublishBatch(ctx, msgs[:1])
	if !errors.As(err, &be) || !errors.Is(be.Errs[0], context.Canceled) {
		t.Errorf("cancelled batch: %v, want a *BatchError of context.Canceled", err)
	}
}

func TestRestartKeepsStreamsAndMessages(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, err := Connect(t.Context(), Config{DataDir: dir}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := first.EnsureStreams(t.Context()); err != nil {
		t.Fatal(err)
	}
	ids := publishN(t, first, "jobs.test.restart", "restart", 5)
	// Consume two of them before the restart.
	cons, err := first.JetStream().CreateOrUpdateConsumer(t.Context(), StreamJobs, jetstream.ConsumerConfig{
		Durable: "restart", FilterSubject: "jobs.test.restart", AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(2, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.DoubleAck(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	lastSeq, err := first.StreamLastSeq(t.Context(), StreamJobs)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}

	f := connect(t, Config{DataDir: dir})
	if n := streamMsgs(t, f.bus, StreamJobs); n != 3 {
		t.Errorf("after restart JOBS holds %d messages, want 3", n)
	}
	if got, err := f.bus.StreamLastSeq(t.Context(), StreamJobs); err != nil || got != lastSeq {
		t.Errorf("last sequence after restart %d (%v), want %d", got, err, lastSeq)
	}
	seen := make(chan string, 10)
	stop := runConsumer(t, f.bus, ConsumerConfig{Stream: StreamJobs, Durable: "restart", FilterSubject: "jobs.test.restart"},
		func(_ context.Context, d Delivery) error {
			seen <- d.ID
			return nil
		})
	var got []string
	for range 3 {
		select {
		case id := <-seen:
			got = append(got, id)
		case <-time.After(10 * time.Second):
			t.Fatalf("after restart consumed %v, want the last 3 of %v", got, ids)
		}
	}
	if diff := cmp.Diff(ids[2:], got); diff != "" {
		t.Errorf("consumed after restart (-want +got):\n%s", diff)
	}

	// An emptied work queue still knows its last sequence after a restart:
	// the relay's check for a lost tail depends on it.
	eventually(t, 5*time.Second, "queue emptied", func() bool { return streamMsgs(t, f.bus, StreamJobs) == 0 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := f.bus.Close(); err != nil {
		t.Fatal(err)
	}
	g := connect(t, Config{DataDir: dir})
	if got, err := g.bus.StreamLastSeq(t.Context(), StreamJobs); err != nil || got != lastSeq {
		t.Errorf("last sequence of the emptied queue after restart %d (%v), want %d", got, err, lastSeq)
	}
}

// TestReconnect restarts an external broker under a connected bus: the bus
// reconnects by itself and says so.
func TestReconnect(t *testing.T) {
	t.Parallel()
	store := t.TempDir()
	srv := startExternal(t, -1, store)
	port := srv.Addr().(*net.TCPAddr).Port
	f := connect(t, Config{URL: srv.ClientURL()})
	reconnected := make(chan struct{}, 1)
	f.bus.OnReconnect(func() { reconnected <- struct{}{} })
	publishN(t, f.bus, "jobs.test.reconnect", "before", 3)

	srv.Shutdown()
	srv.WaitForShutdown()
	startExternal(t, port, store)
	select {
	case <-reconnected:
	case <-time.After(15 * time.Second):
		t.Fatal("no reconnect notification")
	}
	if got, err := f.bus.StreamLastSeq(t.Context(), StreamJobs); err != nil || got != 3 {
		t.Errorf("last sequence after reconnect %d (%v), want 3", got, err)
	}
	publishN(t, f.bus, "jobs.test.reconnect", "after", 1)
	// Close before the second server stops, or the bus would be closing
	// a reconnecting connection.
	if err := f.bus.Close(); err != nil {
		t.Fatal(err)
	}
}
