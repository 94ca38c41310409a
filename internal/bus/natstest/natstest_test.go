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

// An R3 stream takes writes with one node of three dead.
func TestClusterSurvivesOneNode(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster in -short mode")
	}
	c := natstest.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	js := connect(t, c.URLs())
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	leader := c.Server(st.CachedInfo().Cluster.Leader)
	if leader == nil {
		t.Fatalf("leader %q is not a node", st.CachedInfo().Cluster.Leader)
	}
	leader.Kill()
	for {
		if _, err := js.Publish(ctx, "t.1", []byte("one"), jetstream.WithMsgID("one")); err == nil {
			break
		} else if ctx.Err() != nil {
			t.Fatalf("publish with the leader dead: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	leader.Restart()
	c.WaitHealthy(t)
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages", info.State.Msgs)
	}
}
