package account

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// No more hashes run at once than there are slots; callers past the
// queue, or past the wait, are refused with ErrBusy; and a burst ends
// with the memory handed back.
func TestHashGate(t *testing.T) {
	m, _ := newMetrics(nil)
	released := make(chan struct{}, 10)
	g := newHashGate(2, time.Hour, func() { released <- struct{}{} }, m)

	var running, peak atomic.Int32
	block := make(chan struct{})
	entered := make(chan struct{}, 100)
	hash := func() error {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		entered <- struct{}{}
		<-block
		running.Add(-1)
		return nil
	}
	const callers = 2 + 64 + 10 // two run, 64 queue (32 per slot), ten are refused at once
	var wg sync.WaitGroup
	var busy, done atomic.Int32
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch err := g.do(context.Background(), hash); {
			case errors.Is(err, ErrBusy):
				busy.Add(1)
			case err == nil:
				done.Add(1)
			default:
				t.Errorf("do: %v", err)
			}
		}()
	}
	<-entered
	<-entered
	// Everyone not running is queued or refused; wait for the refusals.
	deadline := time.Now().Add(30 * time.Second)
	for busy.Load() < 10 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := busy.Load(); got != 10 {
		t.Fatalf("%d callers refused with a full queue, want 10", got)
	}
	close(block)
	wg.Wait()
	if p := peak.Load(); p != 2 {
		t.Errorf("%d hashes ran at once, want 2", p)
	}
	if done.Load() != 66 {
		t.Errorf("%d hashes ran, want 66", done.Load())
	}
	select {
	case <-released:
	case <-time.After(30 * time.Second):
		t.Fatal("the burst's memory was not handed back")
	}

	// A caller that waits longer than the wait is refused.
	short := newHashGate(1, time.Millisecond, nil, m)
	hold := make(chan struct{})
	started := make(chan struct{})
	go short.do(context.Background(), func() error { close(started); <-hold; return nil })
	<-started
	if err := short.do(context.Background(), func() error { return nil }); !errors.Is(err, ErrBusy) {
		t.Errorf("past the wait: %v, want ErrBusy", err)
	}
	close(hold)
}

func TestDefaultHashSlots(t *testing.T) {
	if n := DefaultHashSlots(19 * 1024); n < 1 || n > 13 {
		t.Errorf("19 MiB hashes: %d slots (budget allows 13)", n)
	}
	if n := DefaultHashSlots(1 << 30 >> 10); n != 1 {
		t.Errorf("1 GiB hashes: %d slots, want 1 (never 0)", n)
	}
}
