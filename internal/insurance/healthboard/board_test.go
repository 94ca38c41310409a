package healthboard_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/yolda/yolda/internal/bus"
	"github.com/yolda/yolda/internal/insurance"
	"github.com/yolda/yolda/internal/insurance/healthboard"
	"github.com/yolda/yolda/internal/insurance/resilient"
)

// The tests here run the board on a real broker: a nats-server with
// JetStream on loopback that several "processes" (buses) connect to.

const ttl = 2 * time.Second

func startBroker(t *testing.T) string {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv.ClientURL()
}

// process is one process's connection to the broker and its board.
type process struct {
	bus   *bus.Bus
	board *bus.HealthBoard
}

func connect(t *testing.T, url string, ttl time.Duration) process {
	t.Helper()
	b, err := bus.Connect(t.Context(), bus.Config{URL: url, HealthTTL: ttl}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.EnsureStreams(t.Context()); err != nil {
		t.Fatal(err)
	}
	h, err := b.OpenHealthBoard(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return process{bus: b, board: h}
}

// reader is the app's adapter from the bus's board to the View's.
type reader struct{ board *bus.HealthBoard }

func (r reader) Snapshots() ([]healthboard.Snapshot, error) {
	entries, err := r.board.All()
	if err != nil {
		return nil, err
	}
	var out []healthboard.Snapshot
	for _, e := range entries {
		s, err := healthboard.Decode(e.Key, e.At, e.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// failing is an insurer that is down: every call is a server error.
type failing struct{}

func (failing) Verify(context.Context, insurance.Query) (insurance.Verdict, error) {
	return insurance.Verdict{}, insurance.WithKind(insurance.ErrServer, errors.New("503"))
}

// approving is an insurer that answers.
type approving struct{}

func (approving) Verify(context.Context, insurance.Query) (insurance.Verdict, error) {
	return insurance.Verdict{Covered: true}, nil
}

// clients are one process's clients of the insurer "anadolu" behind a,
// whose breaker opens at the first failure; changes hears its
// transitions.
func clients(t *testing.T, a insurance.Adapter, changes *healthboard.Changes) *resilient.Clients {
	t.Helper()
	cfg := insurance.Config{Code: "anadolu", Name: "Anadolu", BaseURL: "http://unused.invalid"}.Default()
	cfg.Retry.Attempts = 1
	cfg.Breaker.Failures = 1
	cfg.Breaker.OpenFor = time.Hour
	cs, err := resilient.NewClients([]insurance.Config{cfg},
		map[string]insurance.Factory{"rest": func(insurance.Config) (insurance.Adapter, error) { return a, nil }},
		resilient.Options{BreakerChanged: changes.BreakerChanged})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// publish runs a publisher for the process until the returned stop.
func publish(t *testing.T, p process, src healthboard.Source, key string, changes *healthboard.Changes, interval time.Duration) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- healthboard.NewPublisher(p.board, src, key, changes.C(), nil).Run(ctx, interval) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("publisher %s: %v", key, err)
		}
	}
	t.Cleanup(stop)
	return stop
}

func verify(t *testing.T, cs *resilient.Clients, n int) {
	t.Helper()
	c, _ := cs.Get("anadolu")
	for range n {
		_, _ = c.Verify(t.Context(), insurance.Query{PolicyNumber: "POL-1", Plate: "34ABC123", ServiceType: "tow", IncidentAt: time.Now()})
	}
}

func until(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, got := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last: %s", what, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func processes(a healthboard.Answer) []string {
	var out []string
	for _, r := range a.Reporters {
		out = append(out, r.Process)
	}
	return out
}

func describe(a healthboard.Answer) string {
	s := fmt.Sprintf("reporters %v, err %v;", processes(a), a.BoardErr)
	for _, i := range a.Insurers {
		s += fmt.Sprintf(" %s breaker %s calls %d errors %d reports %d;", i.Code, i.Breaker, i.Calls, i.Errors, len(i.Reports))
	}
	return s
}

// Two insurance processes post; an api process, which calls no insurer,
// answers with both merged: calls and errors summed, the breaker open
// because one process's is, each process's report apart. A process
// that stops posting without taking its entry down (killed) drops off
// once its entry is older than the TTL; one that stops cleanly drops off
// at once.
func TestBoardMergesProcesses(t *testing.T) {
	url := startBroker(t)
	ins1, ins2, api := connect(t, url, ttl), connect(t, url, ttl), connect(t, url, ttl)

	ch1, ch2 := healthboard.NewChanges(), healthboard.NewChanges()
	down, up := clients(t, failing{}, ch1), clients(t, approving{}, ch2)
	verify(t, up, 3)
	// Posting every ttl/5 keeps a live entry on the board; the down
	// process posts on its breaker's transition only (an hour's interval),
	// so seeing its open breaker proves the transition was posted at once.
	publish(t, ins2, up, "ins-2", ch2, ttl/5)
	stop1 := publish(t, ins1, down, "ins-1", ch1, time.Hour)

	view := healthboard.View{Configured: clients(t, approving{}, healthboard.NewChanges()), Process: "api-1", Board: reader{api.board}}
	until(t, "both processes on the board", func() (bool, string) {
		a := view.Health()
		return slices.Equal(processes(a), []string{"ins-1", "ins-2"}), describe(a)
	})
	verify(t, down, 2) // the first call fails and opens the breaker; the second is refused
	until(t, "the open breaker of ins-1 in the merged answer", func() (bool, string) {
		a := view.Health()
		return len(a.Insurers) == 1 && a.Insurers[0].Breaker == "open", describe(a)
	})
	a := view.Health()
	if a.BoardErr != nil {
		t.Errorf("board error %v", a.BoardErr)
	}
	got := a.Insurers[0]
	if got.Code != "anadolu" || got.Calls != 4 || got.Errors != 1 || len(got.Reports) != 2 {
		t.Errorf("merged: %s", describe(a))
	}
	if got.Reports[0].Process != "ins-1" || got.Reports[0].Breaker != "open" || got.Reports[1].Breaker != "closed" || got.Reports[1].Calls != 3 {
		t.Errorf("reports: %+v", got.Reports)
	}
	// Four recent attempts, one failed: the merged rate is over all four.
	if got.ErrorRate != 0.25 {
		t.Errorf("merged error rate %v, want 0.25", got.ErrorRate)
	}
	for _, r := range a.Reporters {
		if r.Self || time.Since(r.At) > time.Minute || time.Until(r.At) > time.Minute {
			t.Errorf("reporter %+v", r)
		}
	}

	// ins-1 dies: its connection goes without a word, its entry stays on
	// the broker until the TTL.
	_ = ins1.bus.Close()
	stop1() // its last Delete fails: the bus is gone, as in a crash
	until(t, "the dead process to drop off", func() (bool, string) {
		a := view.Health()
		return slices.Equal(processes(a), []string{"ins-2"}) && a.Insurers[0].Breaker == "closed", describe(a)
	})

	// An api process that also calls the insurer (all roles in one)
	// counts its own clients live, not its post.
	self := healthboard.View{Configured: up, Calls: true, Process: "ins-2", Board: reader{api.board}}
	if a := self.Health(); !slices.Equal(processes(a), []string{"ins-2"}) || !a.Reporters[0].Self || a.Insurers[0].Calls != 3 {
		t.Errorf("self view: %s", describe(a))
	}
}

// A publisher that stops cleanly takes its entry down at once: with a TTL
// longer than the test's patience, nothing else could.
func TestBoardCleanStop(t *testing.T) {
	url := startBroker(t)
	ins, api := connect(t, url, time.Hour), connect(t, url, time.Hour)
	ch := healthboard.NewChanges()
	stop := publish(t, ins, clients(t, approving{}, ch), "ins-1", ch, time.Hour)
	view := healthboard.View{Process: "api", Board: reader{api.board}}
	until(t, "the process on the board", func() (bool, string) {
		a := view.Health()
		return slices.Equal(processes(a), []string{"ins-1"}), describe(a)
	})
	stop()
	until(t, "the entry deleted", func() (bool, string) {
		a := view.Health()
		return len(a.Reporters) == 0, describe(a)
	})
	// Insurers no configuration here names are shown by code, from the
	// reports; gone with the reports.
	if a := view.Health(); len(a.Insurers) != 0 {
		t.Errorf("insurers with nobody reporting: %s", describe(a))
	}
}

// With the board unreachable the view falls back to this process's own
// clients and says why.
func TestBoardUnreachableFallsBack(t *testing.T) {
	ch := healthboard.NewChanges()
	own := clients(t, approving{}, ch)
	verify(t, own, 2)
	v := healthboard.View{Configured: own, Calls: true, Process: "p", Board: brokenBoard{}}
	a := v.Health()
	if !errors.Is(a.BoardErr, bus.ErrBoardUnreachable) || len(a.Insurers) != 1 || a.Insurers[0].Calls != 2 || !slices.Equal(processes(a), []string{"p"}) {
		t.Errorf("unreachable: %s", describe(a))
	}
	v.Board = nil
	if a := v.Health(); !errors.Is(a.BoardErr, healthboard.ErrNoBoard) || a.Insurers[0].Calls != 2 {
		t.Errorf("no board: %s", describe(a))
	}
}

type brokenBoard struct{}

func (brokenBoard) Snapshots() ([]healthboard.Snapshot, error) {
	return nil, fmt.Errorf("%w: broker connection reconnecting", bus.ErrBoardUnreachable)
}
