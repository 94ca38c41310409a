package notify_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/bus"
	"github.com/yolda/yolda/internal/bus/natstest"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/notify"
	"github.com/yolda/yolda/internal/outbox"
	"github.com/yolda/yolda/internal/store/postgres"
	"github.com/yolda/yolda/internal/store/postgres/pgtest"
	"github.com/yolda/yolda/internal/store/sqlite"
	"github.com/yolda/yolda/internal/telemetry"
)

// A notify worker killed with SIGKILL in the middle of a batch, before its
// transaction commits or after it commits and before the acks go out, is
// replaced by another: afterwards every event has its notification exactly
// once. The worker runs in a child process (this test binary, re-run with
// killChildEnv set) against a real nats-server process, so that the kill
// loses its in-flight batch and its unsent acks as a crash would.

const (
	killChildEnv = "YOLDA_NOTIFY_KILL_CHILD" // the stage: before or after (the commit)
	killNATSEnv  = "YOLDA_NOTIFY_KILL_NATS"
	killStoreEnv = "YOLDA_NOTIFY_KILL_STORE" // engine:dsn
)

// killStore is what the test needs of a store.
type killStore interface {
	intake.Store
	account.Store
	notify.Store
	PendingOutbox(ctx context.Context, limit int) ([]outbox.Message, error)
	Close() error
}

func openKillStore(engine, dsn string) (killStore, error) {
	if engine == "postgres" {
		return postgres.Open(context.Background(), dsn)
	}
	return sqlite.Open(context.Background(), dsn)
}

// killConsumer is the notify consumer of the test, the same in the child
// and in the parent: a short AckWait brings a dead worker's messages back
// soon, and a linger makes batches of what the stream holds.
func killConsumer(concurrency int) bus.ConsumerConfig {
	return bus.ConsumerConfig{
		Stream: bus.StreamEvents, Durable: notify.Consumer, FilterSubject: "events.request.>",
		AckWait: 2 * time.Second, Concurrency: concurrency, BatchMax: 64, BatchWait: 200 * time.Millisecond,
	}
}

func batchHandler(w *notify.Worker) bus.BatchHandler {
	return func(ctx context.Context, ds []bus.Delivery) ([]error, error) {
		ps := make([][]byte, len(ds))
		for i, d := range ds {
			ps[i] = d.Data
		}
		return w.HandleBatch(ctx, ps)
	}
}

// stallingStore stops the process's first batch of several in its
// tracks at the stage the parent asked for, says so on stdout (with how
// many records it had stored before), and waits for the SIGKILL. The
// child has one worker, so nothing else commits meanwhile.
type stallingStore struct {
	notify.Store
	stage  string
	stored int
	once   sync.Once
}

func (s *stallingStore) RecordNotificationBatch(ctx context.Context, rs []notify.Record) ([]bool, error) {
	if len(rs) < 2 { // a batch, not a lone message
		stored, err := s.Store.RecordNotificationBatch(ctx, rs)
		if err == nil && stored[0] {
			s.stored++
		}
		return stored, err
	}
	stall := func(what string) {
		s.once.Do(func() {
			fmt.Printf("%s %d %d\n", what, len(rs), s.stored)
			select {} // until SIGKILL
		})
	}
	if s.stage == "before" {
		stall("stalled-before-commit")
	}
	stored, err := s.Store.RecordNotificationBatch(ctx, rs)
	if err == nil && s.stage == "after" {
		stall("stalled-after-commit")
	}
	for _, ok := range stored {
		if ok {
			s.stored++
		}
	}
	return stored, err
}

// TestKillChild is the child process; it does nothing in a normal run.
func TestKillChild(t *testing.T) {
	stage := os.Getenv(killChildEnv)
	if stage == "" {
		t.Skip("the child of TestKillMidBatch")
	}
	engine, dsn, _ := strings.Cut(os.Getenv(killStoreEnv), ":")
	store, err := openKillStore(engine, dsn)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.Connect(context.Background(), bus.Config{URL: os.Getenv(killNATSEnv)}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	w := notify.NewWorker(&stallingStore{Store: store, stage: stage}, nil)
	t.Fatal(bus.ConsumeBatch(context.Background(), b, killConsumer(1), batchHandler(w)))
}

func TestKillMidBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("child processes and a nats-server: not in -short mode")
	}
	engines := map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return filepath.Join(t.TempDir(), "yolda.db") },
		"postgres": func(t *testing.T) string { return pgtest.URL(t) },
	}
	for _, engine := range []string{"sqlite", "postgres"} {
		for _, stage := range []string{"before", "after"} {
			t.Run(engine+"/"+stage+"-commit", func(t *testing.T) {
				killMidBatch(t, engine, engines[engine](t), stage)
			})
		}
	}
}

func killMidBatch(t *testing.T, engine, dsn, stage string) {
	const n = 200
	ctx := context.Background()
	srv := natstest.StartServer(t, natstest.Options{})
	store, err := openKillStore(engine, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	reg := prometheus.NewRegistry()
	b, err := bus.Connect(ctx, bus.Config{URL: srv.URL(), Registerer: reg}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if err := b.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	ids := createAndPublish(t, store, b, n)

	// The child takes batches of what the stream holds and stalls in one.
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), killChildEnv+"="+stage, killNATSEnv+"="+srv.URL(), killStoreEnv+"="+engine+":"+dsn)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "stalled-") {
				line <- sc.Text()
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	var stalled string
	select {
	case stalled = <-line:
	case <-time.After(60 * time.Second):
		t.Fatal("the child never stalled in a batch")
	}
	var what string
	var size, before int
	if _, err := fmt.Sscanf(stalled, "%s %d %d", &what, &size, &before); err != nil || size < 2 {
		t.Fatalf("child said %q: want a batch of several", stalled)
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = cmd.Wait()
	want := before // killed before the commit: the batch left nothing
	if stage == "after" {
		want += size // committed, though never acknowledged
	}
	if got := countNotified(t, store, ids); got.total != want {
		t.Fatalf("the child stored %d before the batch of %d and was killed %s its commit: %d notifications, want %d",
			before, size, stage, got.total, want)
	}

	// A new worker: the dead one's messages come back after AckWait, and
	// every event ends with exactly one notification.
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- bus.ConsumeBatch(cctx, b, killConsumer(2), batchHandler(notify.NewWorker(store, nil))) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(60 * time.Second)
	var c notified
	for {
		c = countNotified(t, store, ids)
		if c.missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the kill: %+v", c)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Let any redelivery still on its way arrive, then count once more.
	eventuallyNoPending(t, b)
	c = countNotified(t, store, ids)
	if c.total != n || c.doubled != 0 || c.missing != 0 {
		t.Errorf("after the kill and a new worker: %+v, want %d notifications, one per event", c, n)
	}
	redelivered, _ := telemetry.Sum(reg, "yolda_bus_redeliveries_total", nil)
	if redelivered < float64(size) {
		t.Errorf("%v redeliveries seen by the new worker, want at least the %d of the stalled batch", redelivered, size)
	}
	t.Logf("%s: child stalled %s; afterwards %d notifications for %d events, %v redeliveries", engine, stalled, c.total, n, redelivered)
}

// createAndPublish creates n requests and publishes their events, as the
// relay would, before any worker runs. Each request's request.created
// notifies its customer; the other events (its insurer is unknown: a
// manual review) notify nobody.
func createAndPublish(t *testing.T, store killStore, b *bus.Bus, n int) []string {
	t.Helper()
	ctx := context.Background()
	accounts, err := account.NewService(store, &account.Hasher{Memory: 64, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	u, err := accounts.Add(ctx, account.NewUser{Username: "ayse", Password: "ayse-password", Role: identity.Customer})
	if err != nil {
		t.Fatal(err)
	}
	svc := intake.NewService(store, intake.Options{})
	defer svc.Close()
	who := identity.Principal{UserID: u.ID, Username: u.Username, Role: u.Role}
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			lat, lng := 41.0, 29.0
			c, err := svc.Create(ctx, who, intake.Submission{
				ServiceType: intake.JumpStart,
				Location:    &intake.LocationInput{Lat: &lat, Lng: &lng, Province: "İstanbul"},
				Vehicle:     &intake.Vehicle{Plate: "34ABC123", Type: "car"},
				Policy:      &intake.Policy{Insurer: "anadolu", PolicyNumber: fmt.Sprintf("POL-%d", i)},
				Contact:     &intake.Contact{Name: "Ayşe", Phone: "+905551112233"},
			}, "")
			if err != nil {
				t.Errorf("create: %v", err)
				return
			}
			ids[i] = c.Request.ID
		})
	}
	wg.Wait()
	msgs, err := store.PendingOutbox(ctx, 10*n)
	if err != nil {
		t.Fatal(err)
	}
	var events []bus.Message
	for _, m := range msgs {
		if strings.HasPrefix(m.Subject, "events.") {
			events = append(events, bus.Message{ID: m.ID, Subject: m.Subject, Payload: m.Payload})
		}
	}
	if len(events) < n {
		t.Fatalf("%d events for %d requests", len(events), n)
	}
	if err := b.PublishBatch(ctx, events); err != nil {
		t.Fatal(err)
	}
	return ids
}

type notified struct{ total, missing, doubled int }

func countNotified(t *testing.T, store killStore, ids []string) notified {
	t.Helper()
	var c notified
	for _, id := range ids {
		ns, err := store.Notifications(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		c.total += len(ns)
		switch {
		case len(ns) == 0:
			c.missing++
		case len(ns) > 1:
			c.doubled++
		}
	}
	return c
}

// eventuallyNoPending waits until the notify consumer has nothing pending
// or unacknowledged.
func eventuallyNoPending(t *testing.T, b *bus.Bus) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		cons, err := b.JetStream().Consumer(context.Background(), bus.StreamEvents, notify.Consumer)
		if err == nil {
			info, err := cons.Info(context.Background())
			if err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the notify consumer still has messages pending")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
