package bus

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"
)

// fastConsumer is a consumer config with test-sized timings.
func fastConsumer(durable, subject string) ConsumerConfig {
	return ConsumerConfig{
		Stream:        StreamJobs,
		Durable:       durable,
		FilterSubject: subject,
		AckWait:       2 * time.Second,
		MaxDeliver:    3,
		Backoff:       []time.Duration{20 * time.Millisecond, 50 * time.Millisecond},
		Concurrency:   4,
		DrainTimeout:  5 * time.Second,
		StatsInterval: 50 * time.Millisecond,
	}
}

// recorder collects deliveries and dead letters.
type recorder struct {
	mu         sync.Mutex
	deliveries []Delivery
	dead       []Delivery
	deadErrs   []error
}

func (r *recorder) delivered(d Delivery) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deliveries = append(r.deliveries, d)
	return len(r.deliveries)
}

func (r *recorder) deadLetter(_ context.Context, d Delivery, err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dead = append(r.dead, d)
	r.deadErrs = append(r.deadErrs, err)
	return nil
}

func (r *recorder) counts() (delivered, dead int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.deliveries), len(r.dead)
}

// snapshot copies the deliveries so far: handlers may still be appending.
func (r *recorder) snapshot() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.deliveries)
}

// attempts lists NumDelivered of every delivery of the message id, in order.
func (r *recorder) attempts(id string) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []uint64
	for _, d := range r.deliveries {
		if d.ID == id {
			out = append(out, d.NumDelivered)
		}
	}
	return out
}

func TestConsumeDeliversEveryMessage(t *testing.T) {
	forEachMode(t, func(t *testing.T, f fixture) {
		ids := publishN(t, f.bus, "jobs.test.all", "all", 200)
		var rec recorder
		var running, maxRunning atomic.Int32
		cfg := fastConsumer("all", "jobs.test.all")
		runConsumer(t, f.bus, cfg, func(_ context.Context, d Delivery) error {
			n := running.Add(1)
			defer running.Add(-1)
			for {
				m := maxRunning.Load()
				if n <= m || maxRunning.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(time.Millisecond)
			rec.delivered(d)
			return nil
		})
		deadline := time.Now().Add(10 * time.Second)
		for n, _ := rec.counts(); n < len(ids); n, _ = rec.counts() {
			if time.Now().After(deadline) {
				cons, _ := f.bus.JetStream().Consumer(t.Context(), StreamJobs, "all")
				info, _ := cons.Info(t.Context())
				t.Fatalf("delivered %d; consumer: pending %d, unacked %d, pull requests %d, redelivered %d, delivered %+v, ack floor %+v",
					n, info.NumPending, info.NumAckPending, info.NumWaiting, info.NumRedelivered, info.Delivered, info.AckFloor)
			}
			time.Sleep(10 * time.Millisecond)
		}

		var got []string
		for _, d := range rec.snapshot() {
			got = append(got, d.ID)
			if d.NumDelivered != 1 || d.Stream != StreamJobs || d.Consumer != "all" || string(d.Data) != d.ID {
				t.Errorf("delivery %+v", d)
			}
		}
		slices.Sort(got)
		slices.Sort(ids)
		if diff := cmp.Diff(ids, got); diff != "" {
			t.Errorf("delivered (-want +got):\n%s", diff)
		}
		if m := maxRunning.Load(); m > int32(cfg.Concurrency) {
			t.Errorf("%d handlers ran at once, concurrency is %d", m, cfg.Concurrency)
		}
		eventually(t, 5*time.Second, "work queue emptied", func() bool { return streamMsgs(t, f.bus, StreamJobs) == 0 })
		eventually(t, 5*time.Second, "acks counted", func() bool {
			acked := metricValue(t, f.reg, "yolda_bus_consumed_total", map[string]string{"consumer": "all", "outcome": "ack"})
			return acked == float64(len(ids))
		})
		if n := metricValue(t, f.reg, "yolda_bus_handler_duration_seconds", map[string]string{"consumer": "all"}); n != float64(len(ids)) {
			t.Errorf("handler durations observed %v, want %d", n, len(ids))
		}
	})
}

func TestConsumeRedeliversAfterFailure(t *testing.T) {
	forEachMode(t, func(t *testing.T, f fixture) {
		publishN(t, f.bus, "jobs.test.flaky", "flaky", 1)
		var rec recorder
		cfg := fastConsumer("flaky", "jobs.test.flaky")
		cfg.DeadLetter = rec.deadLetter
		runConsumer(t, f.bus, cfg, func(_ context.Context, d Delivery) error {
			rec.delivered(d)
			if d.NumDelivered == 1 {
				return errors.New("database busy")
			}
			return nil
		})
		eventually(t, 10*time.Second, "queue emptied", func() bool { return streamMsgs(t, f.bus, StreamJobs) == 0 })
		if diff := cmp.Diff([]uint64{1, 2}, rec.attempts("flaky-0")); diff != "" {
			t.Errorf("deliveries (-want +got):\n%s", diff)
		}
		if _, dead := rec.counts(); dead != 0 {
			t.Errorf("%d dead letters, want none", dead)
		}
		labels := map[string]string{"consumer": "flaky"}
		if n := metricValue(t, f.reg, "yolda_bus_redeliveries_total", labels); n != 1 {
			t.Errorf("redeliveries counted %v, want 1", n)
		}
		labels["outcome"] = "failed"
		if n := metricValue(t, f.reg, "yolda_bus_consumed_total", labels); n != 1 {
			t.Errorf("failures counted %v, want 1", n)
		}
	})
}

func TestConsumeDeadLettersPoison(t *testing.T) {
	forEachMode(t, func(t *testing.T, f fixture) {
		publishN(t, f.bus, "jobs.test.poison", "poison", 1)
		publishN(t, f.bus, "jobs.test.poison", "panic", 1)
		var rec recorder
		cfg := fastConsumer("poison", "jobs.test.poison")
		cfg.DeadLetter = rec.deadLetter
		errPoison := errors.New("cannot parse")
		runConsumer(t, f.bus, cfg, func(_ context.Context, d Delivery) error {
			rec.delivered(d)
			if d.ID == "panic-0" {
				panic("handler bug")
			}
			return errPoison
		})
		eventually(t, 10*time.Second, "two dead letters", func() bool {
			_, dead := rec.counts()
			return dead == 2
		})
		// Longer than the back-off and well past any redelivery.
		time.Sleep(300 * time.Millisecond)

		for _, id := range []string{"poison-0", "panic-0"} {
			if diff := cmp.Diff([]uint64{1, 2, 3}, rec.attempts(id)); diff != "" {
				t.Errorf("%s deliveries (-want +got):\n%s", id, diff)
			}
		}
		rec.mu.Lock()
		for i, d := range rec.dead {
			if d.NumDelivered != 3 {
				t.Errorf("%s dead-lettered at delivery %d, want 3", d.ID, d.NumDelivered)
			}
			switch err := rec.deadErrs[i]; d.ID {
			case "poison-0":
				if !errors.Is(err, errPoison) {
					t.Errorf("poison dead letter error %v, want the handler's", err)
				}
			case "panic-0":
				if err == nil || err.Error() != "handler panic: handler bug" {
					t.Errorf("panic dead letter error %v", err)
				}
			}
		}
		rec.mu.Unlock()
		if n := streamMsgs(t, f.bus, StreamJobs); n != 0 {
			t.Errorf("JOBS holds %d messages after dead letters, want 0", n)
		}
		dead := metricValue(t, f.reg, "yolda_bus_consumed_total", map[string]string{"consumer": "poison", "outcome": "dead"})
		if dead != 2 {
			t.Errorf("dead letters counted %v, want 2", dead)
		}
	})
}

// TestConsumeRetryIsNotAFailure: explicit retries leave the failure budget
// alone, though the broker counts them as deliveries.
func TestConsumeRetryIsNotAFailure(t *testing.T) {
	t.Parallel()
	f := setupEmbedded(t)
	publishN(t, f.bus, "jobs.test.retry", "ok", 1)
	publishN(t, f.bus, "jobs.test.retry", "bad", 1)
	var rec recorder
	cfg := fastConsumer("retry", "jobs.test.retry")
	cfg.MaxDeliver = 2
	cfg.DeadLetter = rec.deadLetter
	runConsumer(t, f.bus, cfg, func(_ context.Context, d Delivery) error {
		rec.delivered(d)
		switch {
		case d.NumDelivered <= 4:
			return errors.Join(errors.New("breaker open"), Retry(10*time.Millisecond))
		case d.ID == "ok-0":
			return nil
		default:
			return errors.New("still broken")
		}
	})
	eventually(t, 10*time.Second, "both settled", func() bool { return streamMsgs(t, f.bus, StreamJobs) == 0 })

	// ok: four retries, then success, though MaxDeliver is 2.
	if diff := cmp.Diff([]uint64{1, 2, 3, 4, 5}, rec.attempts("ok-0")); diff != "" {
		t.Errorf("ok deliveries (-want +got):\n%s", diff)
	}
	// bad: four retries, then two failures, then the dead letter.
	if diff := cmp.Diff([]uint64{1, 2, 3, 4, 5, 6}, rec.attempts("bad-0")); diff != "" {
		t.Errorf("bad deliveries (-want +got):\n%s", diff)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.dead) != 1 || rec.dead[0].ID != "bad-0" || rec.dead[0].NumDelivered != 6 {
		t.Errorf("dead letters %+v, want bad-0 at delivery 6", rec.dead)
	}
	retries := metricValue(t, f.reg, "yolda_bus_consumed_total", map[string]string{"consumer": "retry", "outcome": "retry"})
	if retries != 8 {
		t.Errorf("retries counted %v, want 8", retries)
	}
}

// TestConsumeDeadLettersUnanswered: deliveries that never came back (a
// crashed worker) count as failures, and the message is dead-lettered
// without running the handler again.
func TestConsumeDeadLettersUnanswered(t *testing.T) {
	t.Parallel()
	f := setupEmbedded(t)
	publishN(t, f.bus, "jobs.test.crash", "crash", 1)
	cfg := fastConsumer("crash", "jobs.test.crash").withDefaults()
	cfg.AckWait = 200 * time.Millisecond
	cfg.MaxDeliver = 2
	c, err := newConsumer(t.Context(), f.bus, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := c.declare(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Two workers take the message and die: nothing acks or naks it.
	for range 2 {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for range batch.Messages() {
		}
	}

	var rec recorder
	cfg.DeadLetter = rec.deadLetter
	runConsumer(t, f.bus, cfg, func(_ context.Context, d Delivery) error {
		rec.delivered(d)
		return nil
	})
	eventually(t, 10*time.Second, "dead letter", func() bool {
		_, dead := rec.counts()
		return dead == 1
	})
	delivered, _ := rec.counts()
	if delivered != 0 {
		t.Errorf("handler ran %d times, want 0", delivered)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if !errors.Is(rec.deadErrs[0], ErrDeliveryLimit) || rec.dead[0].NumDelivered != 3 {
		t.Errorf("dead letter at delivery %d with %v, want 3 and ErrDeliveryLimit", rec.dead[0].NumDelivered, rec.deadErrs[0])
	}
}

// TestConsumeKeepsMessageWhenDeadLetterFails: a dead letter that could not
// be stored is not dropped; it is offered again.
func TestConsumeKeepsMessageWhenDeadLetterFails(t *testing.T) {
	t.Parallel()
	f := setupEmbedded(t)
	publishN(t, f.bus, "jobs.test.dlq", "dlq", 1)
	var calls atomic.Int32
	cfg := fastConsumer("dlq", "jobs.test.dlq")
	cfg.MaxDeliver = 1
	cfg.DeadLetter = func(context.Context, Delivery, error) error {
		if calls.Add(1) == 1 {
			return errors.New("database down")
		}
		return nil
	}
	var handled atomic.Int32
	runConsumer(t, f.bus, cfg, func(context.Context, Delivery) error {
		handled.Add(1)
		return errors.New("poison")
	})
	eventually(t, 10*time.Second, "queue emptied", func() bool { return streamMsgs(t, f.bus, StreamJobs) == 0 })
	if n := calls.Load(); n != 2 {
		t.Errorf("dead-letter hook called %d times, want 2", n)
	}
	if n := handled.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1: the second delivery goes straight to the dead letter", n)
	}
}

func TestConsumeDrainsGracefully(t *testing.T) {
	forEachMode(t, func(t *testing.T, f fixture) {
		publishN(t, f.bus, "jobs.test.drain", "drain", 1)
		started := make(chan struct{})
		var finished atomic.Bool
		cfg := fastConsumer("drain", "jobs.test.drain")
		cfg.AckWait = time.Second
		stop := runConsumer(t, f.bus, cfg, func(ctx context.Context, d Delivery) error {
			close(started)
			time.Sleep(500 * time.Millisecond) // a transaction that does not look at ctx
			if ctx.Err() != nil {
				t.Errorf("handler context ended at shutdown: %v", ctx.Err())
			}
			finished.Store(true)
			return nil
		})
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("handler not started")
		}
		if err := stop(); err != nil {
			t.Fatalf("consume: %v", err)
		}
		if !finished.Load() {
			t.Fatal("Consume returned before the handler finished")
		}

		// Acked: the broker has nothing left for a new instance.
		cons, err := f.bus.JetStream().Consumer(t.Context(), StreamJobs, "drain")
		if err != nil {
			t.Fatal(err)
		}
		info, err := cons.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending != 0 || info.NumPending != 0 {
			t.Errorf("after drain: %d unacked, %d pending; want 0, 0", info.NumAckPending, info.NumPending)
		}
		var again atomic.Int32
		stop = runConsumer(t, f.bus, cfg, func(context.Context, Delivery) error {
			again.Add(1)
			return nil
		})
		time.Sleep(cfg.AckWait + 200*time.Millisecond)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if n := again.Load(); n != 0 {
			t.Errorf("new instance got %d deliveries, want 0", n)
		}
	})
}

func TestConsumeDrainTimesOut(t *testing.T) {
	t.Parallel()
	f := setupEmbedded(t)
	publishN(t, f.bus, "jobs.test.stuck", "stuck", 1)
	started := make(chan struct{})
	cfg := fastConsumer("stuck", "jobs.test.stuck")
	cfg.DrainTimeout = 100 * time.Millisecond
	stop := runConsumer(t, f.bus, cfg, func(ctx context.Context, d Delivery) error {
		close(started)
		<-ctx.Done() // ends only when the drain gives up
		return ctx.Err()
	})
	<-started
	if err := stop(); err == nil {
		t.Error("Consume returned nil with a handler still running")
	}
}

func TestConsumeReportsPending(t *testing.T) {
	t.Parallel()
	f := setupEmbedded(t)
	publishN(t, f.bus, "jobs.test.pending", "pending", 10)
	release := make(chan struct{})
	cfg := fastConsumer("pending", "jobs.test.pending")
	cfg.Concurrency = 1
	stop := runConsumer(t, f.bus, cfg, func(ctx context.Context, d Delivery) error {
		<-release
		return nil
	})
	labels := map[string]string{"consumer": "pending"}
	eventually(t, 5*time.Second, "pending sampled", func() bool {
		labels["state"] = "undelivered"
		undelivered := metricValue(t, f.reg, "yolda_bus_consumer_pending", labels)
		labels["state"] = "unacked"
		unacked := metricValue(t, f.reg, "yolda_bus_consumer_pending", labels)
		return undelivered+unacked == 10 && unacked >= 1
	})
	close(release)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	labels["state"] = "undelivered"
	if n := metricValue(t, f.reg, "yolda_bus_consumer_pending", labels); n != 0 {
		t.Errorf("stopped consumer still reports %v pending", n)
	}
}

func TestConsumeRejectsBadConfig(t *testing.T) {
	t.Parallel()
	f := setupEmbedded(t)
	// A work queue gives each message to one consumer: filters must not
	// overlap.
	runConsumer(t, f.bus, ConsumerConfig{Stream: StreamJobs, Durable: "first", FilterSubject: "jobs.>"},
		func(context.Context, Delivery) error { return nil })
	eventually(t, 5*time.Second, "first consumer", func() bool {
		_, err := f.bus.JetStream().Consumer(t.Context(), StreamJobs, "first")
		return err == nil
	})

	for _, tc := range []struct {
		name string
		cfg  ConsumerConfig
	}{
		{"no stream", ConsumerConfig{Durable: "x"}},
		{"dotted durable", ConsumerConfig{Stream: StreamJobs, Durable: "a.b"}},
		{"concurrency above max ack pending", ConsumerConfig{Stream: StreamJobs, Durable: "x", Concurrency: 10, MaxAckPending: 5}},
		{"no such stream", ConsumerConfig{Stream: "NOPE", Durable: "x"}},
		{"overlapping filter on the work queue", ConsumerConfig{Stream: StreamJobs, Durable: "second", FilterSubject: "jobs.test.>"}},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		err := Consume(ctx, f.bus, tc.cfg, func(context.Context, Delivery) error { return nil })
		cancel()
		if err == nil {
			t.Errorf("%s: Consume returned nil", tc.name)
		}
		t.Logf("%s: %v", tc.name, err)
	}
}

func TestConsumeEndsWhenBusCloses(t *testing.T) {
	t.Parallel()
	f := setupEmbedded(t)
	done := make(chan error, 1)
	go func() {
		done <- Consume(context.Background(), f.bus, fastConsumer("closing", "jobs.test.closing"),
			func(context.Context, Delivery) error { return nil })
	}()
	eventually(t, 5*time.Second, "consumer pulling", func() bool {
		cons, err := f.bus.JetStream().Consumer(t.Context(), StreamJobs, "closing")
		if err != nil {
			return false
		}
		info, err := cons.Info(t.Context())
		return err == nil && info.NumWaiting > 0
	})
	if err := f.bus.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Consume returned %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Consume still running after Close")
	}
}

func TestConsumeStoppedWhileDeclaringIsClean(t *testing.T) {
	t.Parallel()
	f := setupEmbedded(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // stopped before the consumer could be declared
	if err := Consume(ctx, f.bus, ConsumerConfig{Stream: StreamJobs, Durable: "never", FilterSubject: "jobs.never.>"},
		func(context.Context, Delivery) error { return nil }); err != nil {
		t.Fatalf("a consumer stopped before it started returned %v, want nil", err)
	}
}
