package bus

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/telemetry"
)

// testLogger writes to t.Log until the test ends; the broker's goroutines
// may log a little later, and t.Log would panic then.
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// fixture is a connected bus with declared streams and its own registry.
type fixture struct {
	bus *Bus
	reg *prometheus.Registry
	cfg Config
	log *slog.Logger
}

// mode names a way to reach a broker: embedded in the process, or an
// external server on a loopback port.
type mode struct {
	name  string
	setup func(t *testing.T) fixture
}

var modes = []mode{
	{"embedded", setupEmbedded},
	{"external", setupExternal},
}

// forEachMode runs test against an embedded broker and an external one.
func forEachMode(t *testing.T, test func(t *testing.T, f fixture)) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			test(t, m.setup(t))
		})
	}
}

func setupEmbedded(t *testing.T) fixture {
	t.Helper()
	return connect(t, Config{DataDir: t.TempDir()})
}

func setupExternal(t *testing.T) fixture {
	t.Helper()
	srv := startExternal(t, -1, t.TempDir())
	return connect(t, Config{URL: srv.ClientURL()})
}

// startExternal runs a standalone nats-server with JetStream on loopback,
// as a separate broker would be; port -1 picks a free one.
func startExternal(t *testing.T, port int, storeDir string) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		ServerName: "external",
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   storeDir,
		NoSigs:     true,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.SetLoggerV2(serverLogger{log: testLogger(t)}, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("external server not ready")
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv
}

func connect(t *testing.T, cfg Config) fixture {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	log := testLogger(t)
	b, err := Connect(t.Context(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	if err := b.EnsureStreams(t.Context()); err != nil {
		t.Fatal(err)
	}
	return fixture{bus: b, reg: reg, cfg: cfg, log: log}
}

// publishN publishes n messages on subject with ids prefix-0 ... and
// returns the ids.
func publishN(t *testing.T, b *Bus, subject, prefix string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	msgs := make([]Message, n)
	for i := range n {
		ids[i] = fmt.Sprintf("%s-%d", prefix, i)
		msgs[i] = Message{ID: ids[i], Subject: subject, Payload: []byte(ids[i])}
	}
	if err := b.PublishBatch(t.Context(), msgs); err != nil {
		t.Fatal(err)
	}
	return ids
}

// streamMsgs is how many messages the stream holds now.
func streamMsgs(t *testing.T, b *Bus, stream string) uint64 {
	t.Helper()
	s, err := b.JetStream().Stream(t.Context(), stream)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.Msgs
}

// runConsumer runs Consume in the background; the returned function stops
// it and returns its error.
func runConsumer(t *testing.T, b *Bus, cfg ConsumerConfig, h Handler) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Consume(ctx, b, cfg, h) }()
	var once sync.Once
	var err error
	var stopped atomic.Bool
	stopOnce := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = fmt.Errorf("consume did not return")
			}
		})
		return err
	}
	// A test that stops the consumer checks the error itself.
	t.Cleanup(func() {
		if stopped.Load() {
			return
		}
		if err := stopOnce(); err != nil {
			t.Errorf("consume: %v", err)
		}
	})
	return func() error {
		stopped.Store(true)
		return stopOnce()
	}
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// metricValue finds one series in reg: a counter's or a gauge's value, or a
// histogram's sample count. Missing series read as 0.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	v, err := telemetry.Sum(reg, name, labels)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
