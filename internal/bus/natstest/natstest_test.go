package natstest_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/yolda/yolda/internal/bus/natstest"
)

func connect(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// A message acknowledged before a SIGKILL is there after a restart on the
// same port and store.
func TestServerSurvivesKillAndRestart(t *testing.T) {
	s := natstest.StartServer(t, natstest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := connect(t, s.URL())
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t.1", []byte("one")); err != nil {
		t.Fatal(err)
	}
	pid := s.PID()
	s.Kill()
	if s.Running() {
		t.Fatal("running after Kill")
	}
	s.Restart()
	if s.PID() == pid || !s.Running() {
		t.Fatalf("restart: pid %d, was %d", s.PID(), pid)
	}
	var n uint64
	for ctx.Err() == nil { // the client reconnects on its own
		if st, err := js.Stream(ctx, "T"); err == nil {
			n = st.CachedInfo().State.Msgs
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n != 1 {
		t.Fatalf("stream holds %d messages after kill and restart, want 1", n)
	}
	if again := natstest.Binary(t); again == "" {
		t.Fatal("no binary")
	}
}
