package relay_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/yolda/yolda/internal/account"

	"github.com/yolda/yolda/internal/bus"
	"github.com/yolda/yolda/internal/bus/natstest"
	"github.com/yolda/yolda/internal/deadletter"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/notify"
	"github.com/yolda/yolda/internal/outbox"
	"github.com/yolda/yolda/internal/relay"
	"github.com/yolda/yolda/internal/store/postgres"
	"github.com/yolda/yolda/internal/store/postgres/pgtest"
	"github.com/yolda/yolda/internal/store/sqlite"
)

// pipelineStore is everything the pipeline touches.
type pipelineStore interface {
	intake.Store
	account.Store
	relay.Store
	deadletter.Store
	notify.Store
	PendingOutbox(ctx context.Context, limit int) ([]outbox.Message, error)
	EnqueueOutbox(ctx context.Context, msgs []outbox.Message) error
}

var stores = map[string]func(t *testing.T) pipelineStore{
	"sqlite": func(t *testing.T) pipelineStore {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "yolda.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	},
	"postgres": func(t *testing.T) pipelineStore {
		s, err := postgres.Open(context.Background(), pgtest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	},
}

type pipeline struct {
	store  pipelineStore
	bus    *bus.Bus
	relay  *relay.Relay
	intake *intake.Service
	owner  identity.Principal
	dead   *deadletter.Service
	ctx    context.Context
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{}, &slog.HandlerOptions{Level: slog.LevelError}))
}

type testWriter struct{}

func (testWriter) Write(p []byte) (int, error) { return len(p), nil }

// brokers are the ways a test reaches JetStream: embedded in the process,
// or a real nats-server process started for the test.
var brokers = map[string]func(t *testing.T) bus.Config{
	"embedded": func(t *testing.T) bus.Config { return bus.Config{DataDir: t.TempDir()} },
	"external": func(t *testing.T) bus.Config {
		return bus.Config{URL: natstest.StartServer(t, natstest.Options{}).URL()}
	},
}

// newPipeline wires a real store, an embedded broker, a relay and intake.
func newPipeline(t *testing.T, engine string, opts relay.Options) *pipeline {
	t.Helper()
	p, _ := newPipelineOn(t, stores[engine](t), bus.Config{DataDir: t.TempDir()}, opts, quietLogger())
	return p
}

// newPipelineOn wires store, the broker cfg names, a relay and intake as
// internal/app does (the relay publishes recent rows again after every
// reconnect). The relay runs until the test ends; the bus and the relay
// register their metrics on the returned registry.
func newPipelineOn(t *testing.T, store pipelineStore, cfg bus.Config, opts relay.Options, log *slog.Logger) (*pipeline, *prometheus.Registry) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	b, err := bus.Connect(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	rel := relay.New(store, b, opts, log.With("component", "relay"), reg)
	b.OnReconnect(func() { rel.BrokerMayHaveLost("reconnect") })
	svc := intake.NewService(store, intake.Options{Committed: rel.Wake, Batch: intake.BatchOptions{MaxBatch: 64, Writers: 2}})
	accounts, _ := account.NewService(store, &account.Hasher{Memory: 64, Time: 1, Threads: 1})
	u, err := accounts.Add(ctx, account.NewUser{Username: "ayse", Password: "ayse-password", Role: identity.Customer})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = rel.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		svc.Close()
		b.Close()
	})
	return &pipeline{store: store, bus: b, relay: rel, intake: svc, dead: deadletter.NewService(store, nil),
		owner: identity.Principal{UserID: u.ID, Username: u.Username, Role: u.Role}, ctx: ctx}, reg
}

func submission(i int) intake.Submission {
	lat, lng := 41.0+float64(i%100)/1000, 29.0
	return intake.Submission{
		ServiceType: intake.JumpStart,
		Location:    &intake.LocationInput{Lat: &lat, Lng: &lng, Province: "İstanbul"},
		Vehicle:     &intake.Vehicle{Plate: "34ABC123", Type: "car"},
		Policy:      &intake.Policy{Insurer: "anadolu", PolicyNumber: fmt.Sprintf("POL-%d", i)},
		Contact:     &intake.Contact{Name: "Ayşe", Phone: "+905551112233"},
	}
}

func (p *pipeline) create(t *testing.T, n int) []string {
	t.Helper()
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := p.intake.Create(context.Background(), p.owner, submission(i), "")
			if err != nil {
				t.Errorf("create: %v", err)
				return
			}
			ids[i] = c.Request.ID
		}()
	}
	wg.Wait()
	return ids
}

// consumeNotify runs the notify worker, a batch of events per transaction
// as internal/app runs it, behind handler wrapping, until the test ends.
func (p *pipeline) consumeNotify(t *testing.T, wrap func(bus.BatchHandler) bus.BatchHandler) {
	worker := notify.NewWorker(p.store, nil)
	h := bus.BatchHandler(func(ctx context.Context, ds []bus.Delivery) ([]error, error) {
		payloads := make([][]byte, len(ds))
		for i, d := range ds {
			payloads[i] = d.Data
		}
		return worker.HandleBatch(ctx, payloads)
	})
	if wrap != nil {
		h = wrap(h)
	}
	ctx, cancel := context.WithCancel(p.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = bus.ConsumeBatch(ctx, p.bus, bus.ConsumerConfig{
			Stream: bus.StreamEvents, Durable: notify.Consumer, FilterSubject: "events.request.>",
			Concurrency: 4, MaxDeliver: 3, Backoff: []time.Duration{50 * time.Millisecond}, AckWait: 5 * time.Second,
			DeadLetter: func(ctx context.Context, d bus.Delivery, err error) error {
				return p.dead.Record(ctx, d.Consumer, d.Stream, d.Subject, d.ID, d.Data, err, int(d.NumDelivered))
			},
		}, h)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// countNotifications counts, per request, the notifications stored.
func (p *pipeline) countNotifications(t *testing.T, ids []string) (total, missing, doubled int) {
	t.Helper()
	for _, id := range ids {
		ns, err := p.store.Notifications(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		total += len(ns)
		switch {
		case len(ns) == 0:
			missing++
		case len(ns) > 1:
			doubled++
		}
	}
	return total, missing, doubled
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func streamMsgs(t *testing.T, b *bus.Bus, stream string) uint64 {
	t.Helper()
	s, err := b.JetStream().Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// forEachStoreAndBroker runs fn on every store engine with every broker.
func forEachStoreAndBroker(t *testing.T, fn func(t *testing.T, p *pipeline)) {
	for engine := range stores {
		for broker, cfg := range brokers {
			t.Run(engine+"/"+broker, func(t *testing.T) {
				p, _ := newPipelineOn(t, stores[engine](t), cfg(t), relay.Options{}, quietLogger())
				fn(t, p)
			})
		}
	}
}

func forEachStore(t *testing.T, fn func(t *testing.T, engine string)) {
	for name := range stores {
		t.Run(name, func(t *testing.T) { fn(t, name) })
	}
}

// Every committed row reaches the broker once, and the consumer applies
// each event exactly once.
func TestPipelineDeliversEveryRowOnce(t *testing.T) {
	forEachStoreAndBroker(t, func(t *testing.T, p *pipeline) {
		p.consumeNotify(t, nil)
		ids := p.create(t, 300)
		waitFor(t, "300 notifications", 20*time.Second, func() bool {
			total, _, _ := p.countNotifications(t, ids)
			return total >= 300
		})
		waitFor(t, "empty outbox", 5*time.Second, func() bool {
			n, _, _ := p.store.OutboxBacklog(context.Background())
			return n == 0
		})
		total, missing, doubled := p.countNotifications(t, ids)
		if total != 300 || missing != 0 || doubled != 0 {
			t.Errorf("notifications: %d total, %d missing, %d doubled", total, missing, doubled)
		}
		// No insurer is configured and no dispatch consumer runs: each
		// request has its one dispatch job waiting on its own subject, and
		// no insurance check that nothing would take.
		if n := streamMsgs(t, p.bus, bus.StreamJobs); n != 300 {
			t.Errorf("JOBS holds %d messages, want one dispatch job per request (300)", n)
		}
		for _, id := range ids[:10] {
			if ok, err := p.bus.HasMessage(context.Background(), outbox.DispatchRequestSubject(id)); err != nil || !ok {
				t.Errorf("dispatch job of %s: %v %v", id, ok, err)
			}
		}
	})
}

// A handler that commits and then dies before its ack: the message comes
// back, and the receipt stops it from being applied twice.
func TestCrashAfterCommitBeforeAckAppliesOnce(t *testing.T) {
	forEachStoreAndBroker(t, func(t *testing.T, p *pipeline) {
		var redelivered atomic.Int64
		p.consumeNotify(t, func(next bus.BatchHandler) bus.BatchHandler {
			return func(ctx context.Context, ds []bus.Delivery) ([]error, error) {
				results, err := next(ctx, ds)
				if err != nil {
					return nil, err
				}
				for i, d := range ds {
					if d.NumDelivered == 1 {
						results[i] = errors.New("crashed after commit, before ack") // no ack reaches the broker
						continue
					}
					redelivered.Add(1)
				}
				return results, nil
			}
		})
		ids := p.create(t, 50)
		// Two events per request: request.created and, with no insurer
		// configured, request.insurance_checked.
		waitFor(t, "every event redelivered", 20*time.Second, func() bool { return redelivered.Load() >= 100 })
		total, missing, doubled := p.countNotifications(t, ids)
		t.Logf("%d events delivered twice; notifications %d, missing %d, doubled %d", redelivered.Load(), total, missing, doubled)
		if total != 50 || missing != 0 || doubled != 0 {
			t.Errorf("after redelivery: %d notifications for 50 requests (%d missing, %d doubled)", total, missing, doubled)
		}
	})
}

// Rows committed while no relay ran (a crash between commit and publish)
// are published when one starts.
func TestRowsCommittedWithoutRelayArePublishedLater(t *testing.T) {
	forEachStore(t, func(t *testing.T, engine string) {
		store := stores[engine](t)
		ctx := context.Background()
		svc := intake.NewService(store, intake.Options{})
		accounts, _ := account.NewService(store, &account.Hasher{Memory: 64, Time: 1, Threads: 1})
		u, _ := accounts.Add(ctx, account.NewUser{Username: "ayse", Password: "ayse-password", Role: identity.Customer})
		who := identity.Principal{UserID: u.ID, Role: u.Role}
		for i := range 40 {
			if _, err := svc.Create(ctx, who, submission(i), ""); err != nil {
				t.Fatal(err)
			}
		}
		svc.Close()
		if n, _, _ := store.OutboxBacklog(ctx); n != 120 {
			t.Fatalf("backlog before any relay: %d, want 120 (a dispatch job and two events each)", n)
		}
		b, err := bus.Connect(ctx, bus.Config{DataDir: t.TempDir()}, quietLogger())
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if err := b.EnsureStreams(ctx); err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = relay.New(store, b, relay.Options{}, quietLogger(), nil).Run(rctx) }()
		defer func() { cancel(); <-done }()
		waitFor(t, "120 messages in the broker", 10*time.Second, func() bool {
			return streamMsgs(t, b, bus.StreamJobs)+streamMsgs(t, b, bus.StreamEvents) == 120
		})
	})
}

// When a stream's sequence goes backwards (the broker lost its unflushed
// tail), the relay publishes again what the broker lost; a reconnect to a
// broker that lost nothing publishes nothing again.
func TestRelayRepublishesWhenBrokerLostItsTail(t *testing.T) {
	forEachStore(t, func(t *testing.T, engine string) {
		p, reg := newPipelineOn(t, stores[engine](t), bus.Config{DataDir: t.TempDir()}, relay.Options{Check: 50 * time.Millisecond}, quietLogger())
		p.create(t, 20) // 40 events: created and insurance_checked (no insurer configured)
		waitFor(t, "40 events published", 10*time.Second, func() bool { return streamMsgs(t, p.bus, bus.StreamEvents) == 40 })
		// The relay has read the sequence it will compare against once its
		// gauge shows the 40 events: a loss between two of its checks is
		// caught by the reconnect instead.
		waitFor(t, "the relay to see the stream", 10*time.Second, func() bool {
			return metricSum(t, reg, "yolda_stream_messages", map[string]string{"stream": bus.StreamEvents}) == 40
		})
		p.relay.BrokerMayHaveLost("reconnect")
		p.create(t, 1) // the relay loop has handled the reconnect once this is published
		waitFor(t, "42 events published", 10*time.Second, func() bool { return streamMsgs(t, p.bus, bus.StreamEvents) == 42 })
		if n := metricSum(t, reg, "yolda_relay_republished_total", nil); n != 0 {
			t.Errorf("a reconnect to a broker that lost nothing republished %.0f rows", n)
		}
		// Lose the EVENTS stream's contents and sequence, as a power loss
		// before fsync would.
		js := p.bus.JetStream()
		s, _ := js.Stream(context.Background(), bus.StreamEvents)
		info, _ := s.Info(context.Background())
		cfg := info.Config
		if err := js.DeleteStream(context.Background(), bus.StreamEvents); err != nil {
			t.Fatal(err)
		}
		if _, err := js.CreateStream(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
		// One more request moves the sequence to 2: below what was seen.
		p.create(t, 1)
		waitFor(t, "the lost events republished", 10*time.Second, func() bool { return streamMsgs(t, p.bus, bus.StreamEvents) == 44 })
		// Only EVENTS lost anything: the dispatch jobs were not published again.
		if n := metricSum(t, reg, "yolda_bus_published_total", map[string]string{"stream": bus.StreamJobs}); n != 22 {
			t.Errorf("JOBS publishes: %.0f, want the 22 dispatch jobs once each", n)
		}
	})
}

// A poison event ends in the dead-letter store after MaxDeliver; once the
// cause is fixed, a retry through the outbox processes it.
func TestPoisonMessageDeadLetterAndRedrive(t *testing.T) {
	forEachStore(t, func(t *testing.T, engine string) {
		p := newPipeline(t, engine, relay.Options{})
		var fixed atomic.Bool
		var failures atomic.Int64
		p.consumeNotify(t, func(next bus.BatchHandler) bus.BatchHandler {
			return func(ctx context.Context, ds []bus.Delivery) ([]error, error) {
				results := make([]error, len(ds))
				var rest []bus.Delivery
				var at []int
				for i, d := range ds {
					var env outbox.Envelope
					_ = json.Unmarshal(d.Data, &env)
					if env.Actor.ID == "poison" && !fixed.Load() {
						failures.Add(1)
						results[i] = errors.New("cannot handle this one yet")
						continue
					}
					rest, at = append(rest, d), append(at, i)
				}
				if len(rest) > 0 {
					r, err := next(ctx, rest)
					if err != nil {
						return nil, err
					}
					for j, i := range at {
						results[i] = r[j]
					}
				}
				return results, nil
			}
		})
		ids := p.create(t, 1)
		poison, err := outbox.New(outbox.EventSubject(outbox.EventRequestStatusChanged), outbox.EventRequestStatusChanged, time.Now(), ids[0],
			outbox.Actor{ID: "poison"}, intake.StatusChange{From: intake.StatusReceived, To: intake.StatusCancelled, OwnerID: p.owner.UserID})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.store.EnqueueOutbox(context.Background(), []outbox.Message{poison}); err != nil {
			t.Fatal(err)
		}
		p.relay.Wake()
		var letters []deadletter.Letter
		waitFor(t, "a dead letter", 20*time.Second, func() bool {
			letters, _ = p.dead.List(context.Background(), "", 10)
			return len(letters) == 1
		})
		l := letters[0]
		if l.MessageID != poison.ID || l.Consumer != notify.Consumer || l.Deliveries != 3 || l.Error == "" || failures.Load() != 3 {
			t.Errorf("dead letter %+v after %d failures", l, failures.Load())
		}
		// Only the received notification so far.
		if ns, _ := p.store.Notifications(context.Background(), ids[0]); len(ns) != 1 {
			t.Fatalf("notifications before re-drive: %d", len(ns))
		}
		fixed.Store(true)
		if _, err := p.dead.Retry(context.Background(), l.ID); err != nil {
			t.Fatal(err)
		}
		p.relay.Wake()
		waitFor(t, "the re-driven event processed", 20*time.Second, func() bool {
			ns, _ := p.store.Notifications(context.Background(), ids[0])
			return len(ns) == 2
		})
		if failures.Load() != 3 {
			t.Errorf("failures after fix: %d", failures.Load())
		}
	})
}
