package relay_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/bus"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
	"github.com/yolda/yolda/internal/relay"
	"github.com/yolda/yolda/internal/store/postgres"
	"github.com/yolda/yolda/internal/store/postgres/pgtest"
	"github.com/yolda/yolda/internal/store/sqlite"
)

// relayStores opens n stores on one database, as n relay processes would
// (SQLite: one file has one relay process; its relays share the store).
func relayStores(t *testing.T, engine string, n int) []pipelineStore {
	t.Helper()
	var out []pipelineStore
	switch engine {
	case "sqlite":
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "yolda.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		for range n {
			out = append(out, s)
		}
	case "postgres":
		u := pgtest.URL(t)
		for range n {
			s, err := postgres.Open(context.Background(), u)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			out = append(out, s)
		}
	}
	return out
}

// The events of one request, relayed by several relays at once (each
// publishing one row per round, so that they overtake each other), reach a
// consumer in any order; with outbox.Versions it applies them in version
// order, ends on the last version, and ignores a stale copy that arrives
// afterwards.
func TestEventsOfOneRequestAppliedInVersionOrder(t *testing.T) {
	forEachStore(t, func(t *testing.T, engine string) {
		const changes = 40
		const subject = "events.test.version"
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		stores := relayStores(t, engine, 4)
		p, _ := newPipelineOn(t, stores[0], bus.Config{DataDir: t.TempDir()}, relay.Options{}, quietLogger())
		// Everything is committed before the racing relays start (the
		// pipeline's own relay polls every second and races too).
		id := p.create(t, 1)[0]
		for range changes {
			if _, err := p.store.UpdateRequest(ctx, id, func(r *intake.Request) (intake.Change, error) {
				r.Advance(time.Now().UTC())
				m, err := outbox.NewMessage(subject, outbox.Envelope{Type: "test.version", OccurredAt: r.UpdatedAt,
					RequestID: r.ID, Seq: r.Version, Actor: outbox.SystemActor}, map[string]int{"version": r.Version})
				return intake.Change{Outbox: []outbox.Message{m}}, err
			}); err != nil {
				t.Fatal(err)
			}
		}

		var mu sync.Mutex
		var received, applied, dropped []int
		var versions outbox.Versions
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = bus.Consume(ctx, p.bus, bus.ConsumerConfig{Stream: bus.StreamEvents, Durable: "order-test", FilterSubject: subject, Concurrency: 1},
				func(ctx context.Context, d bus.Delivery) error {
					var env outbox.Envelope
					if err := json.Unmarshal(d.Data, &env); err != nil {
						return err
					}
					mu.Lock()
					defer mu.Unlock()
					received = append(received, env.Seq)
					if versions.Apply(env) {
						applied = append(applied, env.Seq)
					} else {
						dropped = append(dropped, env.Seq)
					}
					return nil
				})
		}()
		defer func() { cancel(); <-done }()

		var wg sync.WaitGroup
		rctx, stopRelays := context.WithCancel(ctx)
		for _, s := range stores {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = relay.New(s, p.bus, relay.Options{Batch: 1, Poll: 5 * time.Millisecond}, quietLogger(), nil).Run(rctx)
			}()
		}
		defer func() { stopRelays(); wg.Wait() }()

		last := 1 + changes
		waitFor(t, "every change received", 30*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(received) == changes
		})
		// A stale copy of version 5, as a republication or a slow relay
		// would deliver it, with a message id of its own.
		stale, err := outbox.NewMessage(subject, outbox.Envelope{Type: "test.version", OccurredAt: time.Now(),
			RequestID: id, Seq: 5, Actor: outbox.SystemActor}, map[string]int{"version": 5})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.store.EnqueueOutbox(ctx, []outbox.Message{stale}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the stale copy received", 30*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(received) == changes+1
		})

		mu.Lock()
		defer mu.Unlock()
		outOfOrder := 0
		for i := 1; i < len(received); i++ {
			if received[i] < received[i-1] {
				outOfOrder++
			}
		}
		t.Logf("received %v (%d out of order); applied %d, dropped %v", received, outOfOrder, len(applied), dropped)
		for i := 1; i < len(applied); i++ {
			if applied[i] <= applied[i-1] {
				t.Fatalf("applied version %d after %d", applied[i], applied[i-1])
			}
		}
		if len(applied) == 0 || applied[len(applied)-1] != last || versions.Seq(id) != last {
			t.Errorf("ended on version %d (applied %v), want %d", versions.Seq(id), applied, last)
		}
		if len(dropped) == 0 || dropped[len(dropped)-1] != 5 {
			t.Errorf("the stale copy was not ignored: dropped %v", dropped)
		}
		if n := len(applied) + len(dropped); n != changes+1 {
			t.Errorf("applied+dropped = %d, want %d", n, changes+1)
		}
	})
}
