package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
	"github.com/yolda/yolda/internal/store/postgres"
	"github.com/yolda/yolda/internal/store/postgres/pgtest"
	"github.com/yolda/yolda/internal/store/storetest"
	"github.com/yolda/yolda/internal/sweeper"
	"github.com/yolda/yolda/internal/telemetry"
)

func TestMessagingConformance(t *testing.T) {
	storetest.RunMessaging(t, func(t *testing.T) storetest.MessagingStore { return open(t) })
}

// openProcesses opens n stores on one fresh schema, each with its own pool,
// as n processes would.
func openProcesses(t *testing.T, n int) []*postgres.Store {
	t.Helper()
	u := pgtest.URL(t)
	var stores []*postgres.Store
	for range n {
		s, err := postgres.Open(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores = append(stores, s)
	}
	return stores
}

// Relays in separate pools (as in separate processes) never publish a row
// twice: each claims rows no other holds.
func TestRelaysInSeveralProcessesPublishOnce(t *testing.T) {
	ctx := context.Background()
	stores := openProcesses(t, 4)
	owner := addUser(t, stores[0], "ayse")
	var batch []*intake.Creation
	for range 100 {
		batch = append(batch, creation(request(owner.ID, time.Now()), ""))
	}
	if err := stores[0].CreateRequests(ctx, batch); err != nil {
		t.Fatal(err)
	}
	relays := make([]storetest.MessagingStore, len(stores))
	for i, s := range stores {
		relays[i] = s
	}
	published := storetest.RaceRelays(t, relays, 5)
	if len(published) != 300 {
		t.Errorf("published %d distinct rows, want 300", len(published))
	}
	for id, n := range published {
		if n > 1 {
			t.Errorf("%s published %d times", id, n)
		}
	}
}

// A relay holds no lock and no transaction while the broker is asked: a
// publish that hangs for as long as the broker lets it (10 s) leaves the
// rows free for anyone to lock and the relay's connection idle.
func TestRelayHoldsNoLockAcrossPublish(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	owner := addUser(t, s, "ayse")
	if err := s.CreateRequests(ctx, []*intake.Creation{creation(request(owner.ID, time.Now()), "")}); err != nil {
		t.Fatal(err)
	}
	inPublish, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := s.RelayOutbox(ctx, 10, time.Minute, func(msgs []outbox.Message) []outbox.Publication {
			close(inPublish)
			<-release
			return make([]outbox.Publication, len(msgs))
		})
		done <- err
	}()
	<-inPublish
	var locked int
	err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM (SELECT seq FROM outbox FOR UPDATE NOWAIT) o`).Scan(&locked)
	if err != nil || locked != 3 {
		t.Errorf("locking the outbox rows during a publish: %d rows, %v (the relay holds them)", locked, err)
	}
	var open int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()
		AND query LIKE '%outbox%'`).Scan(&open); err != nil || open != 0 {
		t.Errorf("transactions left open on the outbox during a publish: %d %v", open, err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Sweepers in several processes nudge each stale request once: they read
// the same due requests at the same moment, and only the first decision on
// a request is recorded.
func TestSweepersInSeveralProcessesNudgeOnce(t *testing.T) {
	ctx := context.Background()
	stores := openProcesses(t, 4)
	owner := addUser(t, stores[0], "ayse")
	old := time.Now().Add(-time.Hour)
	var batch []*intake.Creation
	for range 60 {
		batch = append(batch, &intake.Creation{Request: request(owner.ID, old)})
	}
	if err := stores[0].CreateRequests(ctx, batch); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	jobs := func(r intake.Request) ([]outbox.Message, error) {
		if len(r.Timeline) != 1 {
			return nil, fmt.Errorf("request %s handed over with %d timeline entries", r.ID, len(r.Timeline))
		}
		m, err := outbox.New(outbox.InsuranceVerifySubject("anadolu", r.ID), "insurance.verify", now, r.ID, outbox.SystemActor, r)
		return []outbox.Message{m}, err
	}
	start := make(chan struct{})
	results := make([]sweeper.Result, len(stores))
	var wg sync.WaitGroup
	for i, s := range stores {
		sw := sweeper.New(s, lostEverything{}, jobs, []sweeper.Rule{{Status: intake.StatusReceived, After: time.Minute}},
			sweeper.Options{Batch: 4, Now: func() time.Time { return now }}, nil, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			var err error
			if results[i], err = sw.SweepOnce(ctx); err != nil {
				t.Errorf("sweep: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	total := 0
	for _, r := range results {
		total += r.Nudged[intake.StatusReceived]
	}
	if total != 60 {
		t.Errorf("sweepers counted %d nudges for 60 requests", total)
	}
	msgs, _ := stores[0].PendingOutbox(ctx, 1000)
	per := map[string]int{}
	for _, m := range msgs {
		per[m.Subject]++
	}
	if len(per) != 60 {
		t.Errorf("jobs committed again for %d requests, want 60", len(per))
	}
	for subject, n := range per {
		if n > 1 {
			t.Errorf("%s committed %d times", subject, n)
		}
	}
}

// lostEverything is a broker that has lost every job.
type lostEverything struct{}

func (lostEverything) HasMessage(context.Context, string) (bool, error) { return false, nil }

// withAppName sets the application_name of the connections of dbURL.
func withAppName(t *testing.T, dbURL, name string) string {
	t.Helper()
	if !strings.HasPrefix(dbURL, "postgres://") && !strings.HasPrefix(dbURL, "postgresql://") {
		return dbURL + " application_name=" + name
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// listener runs ListenOutbox on s until the test ends and returns its
// wakes, after the first one (listening).
func listener(t *testing.T, s *postgres.Store) <-chan struct{} {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	wakes := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- s.ListenOutbox(ctx, func() {
			select {
			case wakes <- struct{}{}:
			default:
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("ListenOutbox returned %v when its context ended, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("ListenOutbox did not return when its context ended")
		}
	})
	expectWake(t, wakes, 5*time.Second, "listening")
	return wakes
}

func expectWake(t *testing.T, wakes <-chan struct{}, within time.Duration, what string) {
	t.Helper()
	select {
	case <-wakes:
	case <-time.After(within):
		t.Fatalf("no wake within %v after %s", within, what)
	}
}

func expectNoWake(t *testing.T, wakes <-chan struct{}, within time.Duration, what string) {
	t.Helper()
	select {
	case <-wakes:
		t.Errorf("woken by %s", what)
	case <-time.After(within):
	}
}

func drain(wakes <-chan struct{}) {
	for {
		select {
		case <-wakes:
		default:
			return
		}
	}
}

func TestListenOutbox(t *testing.T) {
	app := fmt.Sprintf("yolda-listen-test-%d", time.Now().UnixNano())
	s := open(t)
	ls, err := postgres.Open(context.Background(), withAppName(t, pgtest.URL(t), app))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ls.Close() })
	other := open(t) // another schema of the same database
	ctx := context.Background()
	owner := addUser(t, ls, "ayse")
	otherOwner := addUser(t, other, "ayse")
	wakes := listener(t, ls)

	create := func(what string) intake.Request {
		t.Helper()
		drain(wakes)
		r := request(owner.ID, time.Now())
		if err := ls.CreateRequests(ctx, []*intake.Creation{creation(r, "")}); err != nil {
			t.Fatal(err)
		}
		expectWake(t, wakes, time.Second, what)
		return r
	}
	r := create("a creation")

	// Commits in other schemas of the database (other and s each have
	// their own) do not wake this store's relays.
	drain(wakes)
	if err := other.CreateRequests(ctx, []*intake.Creation{creation(request(otherOwner.ID, time.Now()), "")}); err != nil {
		t.Fatal(err)
	}
	if err := s.EnqueueOutbox(ctx, []outbox.Message{{ID: "msg_elsewhere", Subject: "jobs.test", Payload: []byte(`{}`), CreatedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	expectNoWake(t, wakes, 200*time.Millisecond, "another schema's commit")

	// Every other way of committing outbox rows wakes too.
	drain(wakes)
	if err := ls.EnqueueOutbox(ctx, []outbox.Message{{ID: "msg_enq", Subject: "jobs.test", Payload: []byte(`{}`), CreatedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	expectWake(t, wakes, time.Second, "EnqueueOutbox")
	ev, _ := outbox.New(outbox.EventSubject(outbox.EventRequestStatusChanged), outbox.EventRequestStatusChanged, time.Now(), r.ID, outbox.SystemActor, map[string]string{})
	receipt := outbox.Receipt{Consumer: "test", MessageID: "msg_1"}
	update := func(cur *intake.Request) (intake.Change, error) {
		cur.Notes += "+"
		cur.Version++
		return intake.Change{Outbox: []outbox.Message{ev}, Receipt: &receipt}, nil
	}
	drain(wakes)
	if _, err := ls.UpdateRequest(ctx, r.ID, update); err != nil {
		t.Fatal(err)
	}
	expectWake(t, wakes, time.Second, "UpdateRequest")
	// A change rolled back (its receipt is there) notifies nobody.
	drain(wakes)
	if _, err := ls.UpdateRequest(ctx, r.ID, update); !errors.Is(err, outbox.ErrAlreadyProcessed) {
		t.Fatalf("second application: %v", err)
	}
	expectNoWake(t, wakes, 200*time.Millisecond, "a rolled-back change")

	// Kill the listener's connection: it comes back, wakes (it may have
	// missed a commit) and wakes on the next commit again.
	pid := listenerPID(t, s, app)
	drain(wakes)
	var killed bool
	if err := s.Pool().QueryRow(ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate listener backend %d: %v %v", pid, killed, err)
	}
	expectWake(t, wakes, 5*time.Second, "reconnecting")
	if again := listenerPID(t, s, app); again == pid {
		t.Errorf("listener still on backend %d", pid)
	}
	create("a creation after a reconnection")
}

// The listener pings a quiet connection (it would otherwise never notice a
// peer that vanished without a reset) and goes on listening.
func TestListenOutboxQuietConnection(t *testing.T) {
	s := open(t)
	postgres.SetListenHealthEvery(s, 20*time.Millisecond)
	owner := addUser(t, s, "ayse")
	wakes := listener(t, s)
	for i := range 3 {
		before := postgres.ListenPings(s)
		deadline := time.Now().Add(10 * time.Second)
		for postgres.ListenPings(s) < before+2 {
			if time.Now().After(deadline) {
				t.Fatalf("the listener pinged its quiet connection %d times in 10s", postgres.ListenPings(s)-before)
			}
			time.Sleep(5 * time.Millisecond)
		}
		drain(wakes)
		if err := s.CreateRequests(context.Background(), []*intake.Creation{creation(request(owner.ID, time.Now()), "")}); err != nil {
			t.Fatal(err)
		}
		expectWake(t, wakes, time.Second, fmt.Sprintf("creation %d", i))
	}
}

// LISTEN that is accepted but delivers nothing (a connection pooler in
// transaction mode) is found out and said, once, instead of leaving the
// relays to a wait that never ends: the listening gauge stays 0 and the
// failures are counted.
func TestListenOutboxThatDeliversNothingIsReported(t *testing.T) {
	var logs syncBuffer
	reg := prometheus.NewRegistry()
	s, err := postgres.Open(context.Background(), pgtest.URL(t),
		postgres.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))), postgres.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	postgres.DropListenProbe(s, 50*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	woken := make(chan struct{}, 1)
	go func() { done <- s.ListenOutbox(ctx, func() { woken <- struct{}{} }) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, _ := telemetry.Sum(reg, "yolda_outbox_listen_failures_total", map[string]string{"reason": "no_delivery"})
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no_delivery failures counted: %v", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ListenOutbox: %v", err)
	}
	if up, _ := telemetry.Sum(reg, "yolda_outbox_listening", nil); up != 0 {
		t.Errorf("listening gauge %v while nothing is delivered", up)
	}
	select {
	case <-woken:
		t.Error("a listener that never got its probe back claimed to be listening")
	default:
	}
	if n := strings.Count(logs.String(), "outbox listener failed"); n != 1 {
		t.Errorf("warned %d times, want once for the whole failing run:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "transaction mode") {
		t.Errorf("the warning does not say why:\n%s", logs.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}
func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

// listenerPID finds the backend of the one listener whose connections
// are named app: the one whose last statement was LISTEN or its probe.
func listenerPID(t *testing.T, s *postgres.Store, app string) int32 {
	t.Helper()
	var pid int32
	for range 50 {
		err := s.Pool().QueryRow(context.Background(), `SELECT pid FROM pg_stat_activity
			WHERE backend_type = 'client backend' AND application_name = $1
			AND (query ILIKE 'listen%' OR query LIKE 'SELECT pg_notify(%')`, app).Scan(&pid)
		if err == nil {
			return pid
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no listener backend for application %s", app)
	return 0
}
