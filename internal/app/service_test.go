package app

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// A service still starting when the process is asked to stop returns the
// cancellation; the process stops cleanly. A real failure still fails it.
func TestRunServicesStopDuringStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	starting := service{name: "starting", run: func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		return fmt.Errorf("declare consumer: %w", ctx.Err())
	}}
	go func() { <-started; cancel() }()
	if err := runServices(ctx, []service{starting}); err != nil {
		t.Fatalf("stop during start: %v, want nil", err)
	}

	boom := errors.New("boom")
	failing := service{name: "failing", run: func(context.Context) error { return boom }}
	victim := service{name: "victim", run: func(ctx context.Context) error {
		<-ctx.Done()
		return fmt.Errorf("declare consumer: %w", ctx.Err())
	}}
	if err := runServices(context.Background(), []service{failing, victim}); !errors.Is(err, boom) {
		t.Fatalf("a failing service: %v, want %v", err, boom)
	}
}
