package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/outbox"
	"github.com/yolda/yolda/internal/store/sqlite"
)

// TestRelayRecordWaitsForABusyWriter: the relay records what the broker
// confirmed in a write transaction behind the one writer. While the relay
// runs, a writer busy for longer than the cleanup bound (intake, consumers
// and the API at a peak) must delay the record, not fail it: a failed
// record leaves the rows claimed for the lease, then published again.
func TestRelayRecordWaitsForABusyWriter(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "yolda.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	msg, err := outbox.New(outbox.EventSubject(outbox.EventRequestCreated), outbox.EventRequestCreated, time.Now(), "req_1",
		outbox.SystemActor, map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnqueueOutbox(ctx, []outbox.Message{msg}); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	holding := make(chan error, 1)
	n, err := s.RelayOutbox(ctx, 10, time.Minute, func(ms []outbox.Message) []outbox.Publication {
		held := make(chan struct{})
		go func() { holding <- s.HoldWriter(ctx, held, release) }()
		<-held
		// The writer stays busy past the bound, then frees.
		time.AfterFunc(sqlite.CleanupTimeout+time.Second, func() { close(release) })
		return []outbox.Publication{{Stream: "EVENTS", StreamSeq: 1}}
	})
	if err != nil || n != 1 {
		t.Fatalf("RelayOutbox = %d, %v; want the confirmed row recorded once the writer is free", n, err)
	}
	if err := <-holding; err != nil {
		t.Fatal(err)
	}
	if left, _ := s.PendingOutbox(ctx, 10); len(left) != 0 {
		t.Errorf("%d rows still in the outbox", len(left))
	}
}
