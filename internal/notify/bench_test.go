package notify_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/bus"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/notify"
	"github.com/yolda/yolda/internal/store/postgres/pgtest"
)

// BenchmarkNotifyThroughput measures how many request.created events the
// notify worker turns into stored notifications per second, from a
// backlog in the embedded broker: one transaction per event (batch=1, how
// the worker ran before batching) against batches of up to 256.
//
//	go test -run '^$' -bench NotifyThroughput -benchtime 3x ./internal/notify/
//
// (PostgreSQL with YOLDA_TEST_POSTGRES_URL set.)
func BenchmarkNotifyThroughput(b *testing.B) {
	const events = 5000
	engines := map[string]func(b *testing.B) string{
		"sqlite":   func(b *testing.B) string { return filepath.Join(b.TempDir(), "yolda.db") },
		"postgres": func(b *testing.B) string { return pgtest.URL(b) },
	}
	for _, engine := range []string{"sqlite", "postgres"} {
		for _, batch := range []int{1, 256} {
			b.Run(fmt.Sprintf("engine=%s/batch=%d", engine, batch), func(b *testing.B) {
				dsn := engines[engine](b)
				store, err := openKillStore(engine, dsn)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { store.Close() })
				bs, err := bus.Connect(context.Background(), bus.Config{DataDir: b.TempDir()}, slog.New(slog.DiscardHandler))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { bs.Close() })
				if err := bs.EnsureStreams(context.Background()); err != nil {
					b.Fatal(err)
				}
				counting := &countingStore{Store: store}
				worker := notify.NewWorker(counting, nil)
				cfg := bus.ConsumerConfig{Stream: bus.StreamEvents, Durable: notify.Consumer, FilterSubject: "events.request.>",
					Concurrency: 8, BatchMax: batch, AckWait: time.Minute}
				var elapsed time.Duration
				for i := range b.N {
					b.StopTimer()
					publishCreated(b, store, bs, events, i)
					before := counting.stored.Load()
					b.StartTimer()
					start := time.Now()
					ctx, cancel := context.WithCancel(context.Background())
					done := make(chan error, 1)
					go func() { done <- bus.ConsumeBatch(ctx, bs, cfg, batchHandler(worker)) }()
					for counting.stored.Load()-before < events {
						time.Sleep(time.Millisecond)
					}
					elapsed += time.Since(start)
					cancel()
					if err := <-done; err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*events)/elapsed.Seconds(), "events/s")
			})
		}
	}
}

// countingStore counts the notifications stored.
type countingStore struct {
	notify.Store
	stored atomic.Int64
}

func (c *countingStore) RecordNotificationBatch(ctx context.Context, rs []notify.Record) ([]bool, error) {
	stored, err := c.Store.RecordNotificationBatch(ctx, rs)
	for _, ok := range stored {
		if ok {
			c.stored.Add(1)
		}
	}
	return stored, err
}

// publishCreated creates n requests (an insurer that is configured, so
// that request.created is their only event) and publishes their events.
func publishCreated(b *testing.B, store killStore, bs *bus.Bus, n, round int) {
	b.Helper()
	ctx := context.Background()
	accounts, err := account.NewService(store, &account.Hasher{Memory: 64, Time: 1, Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	u, err := accounts.Add(ctx, account.NewUser{Username: fmt.Sprintf("bench%d", round), Password: "bench-password", Role: identity.Customer})
	if err != nil {
		b.Fatal(err)
	}
	svc := intake.NewService(store, intake.Options{KnownInsurer: func(string) bool { return true }})
	defer svc.Close()
	who := identity.Principal{UserID: u.ID, Role: u.Role}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			lat, lng := 41.0, 29.0
			if _, err := svc.Create(ctx, who, intake.Submission{
				ServiceType: intake.JumpStart,
				Location:    &intake.LocationInput{Lat: &lat, Lng: &lng, Province: "İstanbul"},
				Vehicle:     &intake.Vehicle{Plate: "34ABC123", Type: "car"},
				Policy:      &intake.Policy{Insurer: "anadolu", PolicyNumber: fmt.Sprintf("POL-%d", i)},
				Contact:     &intake.Contact{Name: "Ayşe", Phone: "+905551112233"},
			}, ""); err != nil {
				b.Errorf("create: %v", err)
			}
		})
	}
	wg.Wait()
	msgs, err := store.PendingOutbox(ctx, 10*n)
	if err != nil {
		b.Fatal(err)
	}
	var evs []bus.Message
	for _, m := range msgs {
		if strings.HasPrefix(m.Subject, "events.") {
			evs = append(evs, bus.Message{ID: m.ID, Subject: m.Subject, Payload: m.Payload})
		}
	}
	if len(evs) != n*(round+1) {
		b.Fatalf("%d events pending after round %d of %d requests", len(evs), round, n)
	}
	// Earlier rounds' events are in the broker already: the duplicate
	// window drops them.
	if err := bs.PublishBatch(ctx, evs); err != nil {
		b.Fatal(err)
	}
}
