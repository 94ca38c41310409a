package bus

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestBroadcastListen: a listener hears what is broadcast after Listen
// returned, in order, and nothing after stop.
func TestBroadcastListen(t *testing.T) {
	forEachMode(t, func(t *testing.T, f fixture) {
		got := make(chan string, 16)
		stop, err := f.bus.Listen("positions.driver.*", func(subject string, data []byte) { got <- subject + " " + string(data) })
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if err := f.bus.Broadcast(fmt.Sprintf("positions.driver.d%d", i), fmt.Appendf(nil, "%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 3 {
			want := fmt.Sprintf("positions.driver.d%d %d", i, i)
			select {
			case g := <-got:
				if g != want {
					t.Fatalf("heard %q, want %q", g, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("nothing heard, want %q", want)
			}
		}
		stop()
		if err := f.bus.Broadcast("positions.driver.d9", []byte("late")); err != nil {
			t.Fatal(err)
		}
		// A round trip to the broker: had the listener still been
		// subscribed, the message would have been delivered before it.
		if err := f.bus.Conn().Flush(); err != nil {
			t.Fatal(err)
		}
		select {
		case g := <-got:
			t.Fatalf("heard %q after stop", g)
		default:
		}
	})
}

// TestFollow: a follower gets the stream's messages on its subjects that
// were stored once it was ready, in order, and not those stored before.
func TestFollow(t *testing.T) {
	forEachMode(t, func(t *testing.T, f fixture) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		if err := f.bus.Publish(ctx, "events.request.status_changed", "before", []byte("before")); err != nil {
			t.Fatal(err)
		}
		ready := make(chan struct{})
		got := make(chan string, 16)
		done := make(chan error, 1)
		go func() {
			done <- f.bus.Follow(ctx, StreamEvents, []string{"events.request.status_changed", "events.offer.>"},
				func() { close(ready) }, func(subject string, data []byte) { got <- string(data) })
		}()
		select {
		case <-ready:
		case err := <-done:
			t.Fatalf("Follow: %v", err)
		}
		for _, m := range []struct{ subject, data string }{
			{"events.request.status_changed", "s1"}, {"events.request.created", "skipped"},
			{"events.offer.created", "o1"}, {"events.request.status_changed", "s2"},
		} {
			if err := f.bus.Publish(ctx, m.subject, m.data, []byte(m.data)); err != nil {
				t.Fatal(err)
			}
		}
		for _, want := range []string{"s1", "o1", "s2"} {
			select {
			case g := <-got:
				if g != want {
					t.Fatalf("followed %q, want %q", g, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("nothing followed, want %q", want)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Follow after cancel: %v", err)
		}
	})
}
