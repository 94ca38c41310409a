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
)

// batchRecorder is a batch handler's view of the world: a pretend database
// whose transactions apply every delivery of a batch or none, each once
// (receipts), and a log of the batches it was handed.
type batchRecorder struct {
	mu      sync.Mutex
	applied map[string]int // delivery id -> times its effect was committed
	batches [][]string     // ids of each call, in order
	recorder
}

func newBatchRecorder() *batchRecorder { return &batchRecorder{applied: map[string]int{}} }

// commit records a call and, unless fail says otherwise, applies every
// delivery not applied before.
func (r *batchRecorder) commit(ds []Delivery, fail func(Delivery) bool) ([]error, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
		r.delivered(d)
	}
	r.batches = append(r.batches, ids)
	for _, d := range ds {
		if fail != nil && fail(d) {
			return nil, errors.New("constraint violated: the transaction rolled back")
		}
	}
	for _, d := range ds {
		r.applied[d.ID] = max(r.applied[d.ID], 0)
		r.applied[d.ID]++ // a receipt would make a second time a no-op; count to catch it
	}
	return make([]error, len(ds)), nil
}

func (r *batchRecorder) snapshot() (applied map[string]int, batches [][]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	applied = make(map[string]int, len(r.applied))
	for k, v := range r.applied {
		applied[k] = v
	}
	return applied, slices.Clone(r.batches)
}

func runBatchConsumer(t *testing.T, b *Bus, cfg ConsumerConfig, h BatchHandler) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ConsumeBatch(ctx, b, cfg, h) }()
	var once sync.Once
	var err error
	stopOnce := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = errors.New("consume did not return")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stopOnce() })
	return stopOnce
}

// Under load a batch holds what arrived while the previous one was being
// handled; a lone message is handled alone, at once.
func TestConsumeBatchFormsBatches(t *testing.T) {
	forEachMode(t, func(t *testing.T, f fixture) {
		rec := newBatchRecorder()
		cfg := fastConsumer("batches", "jobs.test.batches")
		cfg.Concurrency, cfg.BatchMax = 1, 64
		release := make(chan struct{})
		var first atomic.Bool
		runBatchConsumer(t, f.bus, cfg, func(_ context.Context, ds []Delivery) ([]error, error) {
			results, err := rec.commit(ds, nil)
			if first.CompareAndSwap(false, true) {
				<-release // hold the worker so that the rest pile up
			}
			return results, err
		})
		lone := publishN(t, f.bus, "jobs.test.batches", "lone", 1)
		eventually(t, 10*time.Second, "the lone message handed over", func() bool { return first.Load() })
		ids := publishN(t, f.bus, "jobs.test.batches", "load", 500)
		// More than a batch delivered besides the one held: the next batch
		// is a full one.
		cons, err := f.bus.JetStream().Consumer(t.Context(), StreamJobs, "batches")
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "a pile of pulled messages", func() bool {
			info, err := cons.Info(t.Context())
			return err == nil && info.NumAckPending > 1+cfg.BatchMax
		})
		close(release)
		eventually(t, 20*time.Second, "every message applied", func() bool {
			applied, _ := rec.snapshot()
			return len(applied) == 501
		})
		eventually(t, 5*time.Second, "work queue emptied", func() bool { return streamMsgs(t, f.bus, StreamJobs) == 0 })

		applied, batches := rec.snapshot()
		if diff := cmp.Diff([]string{lone[0]}, batches[0]); diff != "" {
			t.Errorf("first batch (-want +got):\n%s", diff)
		}
		biggest := 0
		for _, b := range batches {
			biggest = max(biggest, len(b))
			if len(b) > cfg.BatchMax {
				t.Errorf("a batch of %d, BatchMax is %d", len(b), cfg.BatchMax)
			}
		}
		if len(batches) < 2 || len(batches[1]) != cfg.BatchMax {
			t.Errorf("the batch after the pile formed: %d messages, want BatchMax (%d)", len(batches[1]), cfg.BatchMax)
		}
		for _, id := range append(ids, lone...) {
			if applied[id] != 1 {
				t.Errorf("%s applied %d times", id, applied[id])
			}
		}
		eventually(t, 5*time.Second, "acks counted", func() bool {
			return metricValue(t, f.reg, "yolda_bus_consumed_total", map[string]string{"consumer": "batches", "outcome": "ack"}) == 501
		})
		if n := metricValue(t, f.reg, "yolda_bus_batch_size", map[string]string{"consumer": "batches"}); n != float64(len(batches)) {
			t.Errorf("batch sizes observed %v, want %d", n, len(batches))
		}
		t.Logf("501 messages in %d batches, the largest %d", len(batches), biggest)
	})
}

// A poison message among good ones: the batch fails, each delivery is
// tried alone, the good ones are applied exactly once and the poison one
// alone fails until it is dead-lettered.
func TestConsumeBatchIsolatesPoison(t *testing.T) {
	forEachMode(t, func(t *testing.T, f fixture) {
		good := publishN(t, f.bus, "jobs.test.poisonbatch", "good", 40)
		poison := publishN(t, f.bus, "jobs.test.poisonbatch", "poison", 1)[0]
		good = append(good, publishN(t, f.bus, "jobs.test.poisonbatch", "after", 40)...)
		rec := newBatchRecorder()
		cfg := fastConsumer("poisonbatch", "jobs.test.poisonbatch")
		cfg.Concurrency, cfg.BatchMax = 1, 256
		// All 81 are in the stream before the consumer starts; a linger
		// makes the first batch take them together.
		cfg.BatchWait = 500 * time.Millisecond
		cfg.DeadLetter = rec.deadLetter
		runBatchConsumer(t, f.bus, cfg, func(_ context.Context, ds []Delivery) ([]error, error) {
			return rec.commit(ds, func(d Delivery) bool { return d.ID == poison })
		})
		eventually(t, 20*time.Second, "the poison dead-lettered", func() bool {
			_, dead := rec.counts()
			return dead == 1
		})
		eventually(t, 5*time.Second, "work queue emptied", func() bool { return streamMsgs(t, f.bus, StreamJobs) == 0 })

		applied, batches := rec.snapshot()
		for _, id := range good {
			if applied[id] != 1 {
				t.Errorf("%s applied %d times, want once", id, applied[id])
			}
		}
		if applied[poison] != 0 {
			t.Errorf("poison applied %d times", applied[poison])
		}
		withPoison, alone := 0, 0
		for _, b := range batches {
			if slices.Contains(b, poison) {
				if len(b) > 1 {
					withPoison++
				} else {
					alone++
				}
			}
		}
		if withPoison == 0 {
			t.Errorf("the poison message never came in a batch with others: the fallback was not exercised (batches %v)", batches)
		}
		// Each failed delivery of the poison is tried alone once.
		if alone != cfg.MaxDeliver {
			t.Errorf("the poison was handled alone %d times, want %d (MaxDeliver)", alone, cfg.MaxDeliver)
		}
		rec.recorder.mu.Lock()
		dead := rec.dead[0]
		rec.recorder.mu.Unlock()
		if dead.ID != poison || dead.NumDelivered != uint64(cfg.MaxDeliver) {
			t.Errorf("dead letter %s at delivery %d, want %s at %d", dead.ID, dead.NumDelivered, poison, cfg.MaxDeliver)
		}
		failed := metricValue(t, f.reg, "yolda_bus_consumed_total", map[string]string{"consumer": "poisonbatch", "outcome": "failed"})
		if failed != float64(cfg.MaxDeliver-1) {
			t.Errorf("failures counted %v, want %d: only the poison fails", failed, cfg.MaxDeliver-1)
		}
	})
}

// Each delivery of a committed batch is settled by its own result: acked,
// retried later without counting a failure, or failed and redelivered.
func TestConsumeBatchSettlesEachResult(t *testing.T) {
	t.Parallel()
	f := setupEmbedded(t)
	publishN(t, f.bus, "jobs.test.mixed", "m", 3) // m-0 ok, m-1 retry, m-2 fails once
	rec := newBatchRecorder()
	cfg := fastConsumer("mixed", "jobs.test.mixed")
	cfg.Concurrency, cfg.BatchWait = 1, 500*time.Millisecond
	cfg.DeadLetter = rec.deadLetter
	runBatchConsumer(t, f.bus, cfg, func(_ context.Context, ds []Delivery) ([]error, error) {
		results, _ := rec.commit(ds, nil)
		for i, d := range ds {
			switch {
			case d.ID == "m-1" && d.NumDelivered == 1:
				results[i] = Retry(10 * time.Millisecond)
			case d.ID == "m-2" && d.NumDelivered == 1:
				results[i] = errors.New("not yet")
			}
		}
		return results, nil
	})
	eventually(t, 10*time.Second, "queue emptied", func() bool { return streamMsgs(t, f.bus, StreamJobs) == 0 })
	if diff := cmp.Diff([]uint64{1}, rec.attempts("m-0")); diff != "" {
		t.Errorf("m-0 deliveries (-want +got):\n%s", diff)
	}
	for _, id := range []string{"m-1", "m-2"} {
		if diff := cmp.Diff([]uint64{1, 2}, rec.attempts(id)); diff != "" {
			t.Errorf("%s deliveries (-want +got):\n%s", id, diff)
		}
	}
	for outcome, want := range map[string]float64{"ack": 3, "retry": 1, "failed": 1} {
		eventually(t, 5*time.Second, outcome+" counted", func() bool {
			return metricValue(t, f.reg, "yolda_bus_consumed_total", map[string]string{"consumer": "mixed", "outcome": outcome}) == want
		})
	}
}

// A panicking batch handler is a failed batch: each delivery is tried
// alone, and only the one that panics fails.
func TestConsumeBatchSurvivesPanic(t *testing.T) {
	t.Parallel()
	f := setupEmbedded(t)
	publishN(t, f.bus, "jobs.test.panicbatch", "p", 5)
	rec := newBatchRecorder()
	cfg := fastConsumer("panicbatch", "jobs.test.panicbatch")
	cfg.Concurrency, cfg.BatchWait, cfg.MaxDeliver = 1, 500*time.Millisecond, 1
	cfg.DeadLetter = rec.deadLetter
	runBatchConsumer(t, f.bus, cfg, func(_ context.Context, ds []Delivery) ([]error, error) {
		for _, d := range ds {
			if d.ID == "p-2" {
				panic("handler bug")
			}
		}
		return rec.commit(ds, nil)
	})
	eventually(t, 10*time.Second, "the panicking one dead-lettered", func() bool {
		_, dead := rec.counts()
		return dead == 1
	})
	eventually(t, 5*time.Second, "queue emptied", func() bool { return streamMsgs(t, f.bus, StreamJobs) == 0 })
	applied, _ := rec.snapshot()
	for _, id := range []string{"p-0", "p-1", "p-3", "p-4"} {
		if applied[id] != 1 {
			t.Errorf("%s applied %d times", id, applied[id])
		}
	}
	rec.recorder.mu.Lock()
	defer rec.recorder.mu.Unlock()
	if rec.dead[0].ID != "p-2" || rec.deadErrs[0].Error() != "handler panic: handler bug" {
		t.Errorf("dead letter %s: %v", rec.dead[0].ID, rec.deadErrs[0])
	}
}

// A batch in flight at shutdown finishes, and its acks reach the broker
// before ConsumeBatch returns.
func TestConsumeBatchDrains(t *testing.T) {
	t.Parallel()
	f := setupEmbedded(t)
	publishN(t, f.bus, "jobs.test.batchdrain", "d", 20)
	started := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	var handled atomic.Int32
	cfg := fastConsumer("batchdrain", "jobs.test.batchdrain")
	cfg.Concurrency, cfg.BatchWait = 1, 500*time.Millisecond
	stop := runBatchConsumer(t, f.bus, cfg, func(ctx context.Context, ds []Delivery) ([]error, error) {
		once.Do(func() { close(started) })
		<-release // a transaction that does not look at ctx
		if ctx.Err() != nil {
			t.Errorf("handler context ended at shutdown: %v", ctx.Err())
		}
		handled.Add(int32(len(ds)))
		return make([]error, len(ds)), nil
	})
	<-started
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	close(release)
	if err := <-stopped; err != nil {
		t.Fatalf("consume: %v", err)
	}
	cons, err := f.bus.JetStream().Consumer(t.Context(), StreamJobs, "batchdrain")
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Whatever was handled is acknowledged; what was still in the stream
	// was not pulled, or was handed over during the drain.
	if int(info.NumAckPending) != 0 || int(info.NumPending)+int(handled.Load()) != 20 {
		t.Errorf("after drain: %d unacked, %d pending, %d handled; want 0 unacked and 20 in all", info.NumAckPending, info.NumPending, handled.Load())
	}
}

func TestConsumeBatchRejectsBadConfig(t *testing.T) {
	t.Parallel()
	f := setupEmbedded(t)
	for _, tc := range []struct {
		name string
		cfg  ConsumerConfig
	}{
		{"negative batch max", ConsumerConfig{Stream: StreamJobs, Durable: "x", BatchMax: -1}},
		{"batch wait longer than half the ack wait", ConsumerConfig{Stream: StreamJobs, Durable: "x", AckWait: time.Second, BatchWait: time.Second}},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		err := ConsumeBatch(ctx, f.bus, tc.cfg, func(context.Context, []Delivery) ([]error, error) { return nil, nil })
		cancel()
		if err == nil {
			t.Errorf("%s: ConsumeBatch returned nil", tc.name)
		}
	}
}

// DefaultBackoff cannot be changed under everyone else.
func TestDefaultBackoffIsACopy(t *testing.T) {
	d := DefaultBackoff()
	d[0] = time.Hour
	if DefaultBackoff()[0] == time.Hour {
		t.Error("changing the slice DefaultBackoff returned changed the default")
	}
	mine := []time.Duration{time.Millisecond}
	cfg := ConsumerConfig{Backoff: mine}.withDefaults()
	mine[0] = time.Hour
	if cfg.Backoff[0] != time.Millisecond {
		t.Error("the consumer shares its caller's Backoff slice")
	}
}
