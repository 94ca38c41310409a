package account

import (
	"context"
	"runtime"
	"sync"
	"time"
)

// Password hashing is the one thing an anonymous caller can make Yolda do
// that costs real memory: argon2id holds its whole memory parameter (19
// MiB by default) for the length of a hash, so 200 logins at once took
// several GiB. The gate bounds how many hashes run at once; a login that
// finds every slot taken waits a little for one and is then refused with
// ErrBusy (503 with Retry-After), which costs nothing.
//
// Bounding concurrency bounds the live memory, not the garbage: after a
// burst the Go heap keeps its high-water mark until the next collection
// (two minutes on an idle server), and the pages are returned to the
// kernel later still. So when the last hash of a burst finishes, the gate
// asks for the memory back at once (release, debug.FreeOSMemory), at most
// once per releaseEvery.

// HashMemoryBudget is the memory that concurrent password hashes may hold
// together when the slot count is derived.
const HashMemoryBudget = 256 << 20

// DefaultHashWait is how long a login waits for a hashing slot.
const DefaultHashWait = 2 * time.Second

// releaseEvery bounds how often a burst's memory is handed back.
const releaseEvery = 5 * time.Second

// DefaultHashSlots is the slot count for hashes of memoryKiB: one per
// CPU (argon2id with one lane keeps one CPU busy, so more only adds
// latency and memory), but no more than HashMemoryBudget allows, and at
// least one.
func DefaultHashSlots(memoryKiB uint32) int {
	n := runtime.GOMAXPROCS(0)
	if per := int64(memoryKiB) << 10; per > 0 {
		n = min(n, int(HashMemoryBudget/per))
	}
	return max(n, 1)
}

type hashGate struct {
	slots   chan struct{}
	queue   chan struct{} // bounds the callers waiting for a slot
	wait    time.Duration
	release func()
	m       *metrics

	mu          sync.Mutex
	active      int  // callers running or waiting
	sinceFree   int  // hashes finished since memory was last handed back
	pending     bool // a release is scheduled
	lastRelease time.Time
}

func newHashGate(slots int, wait time.Duration, release func(), m *metrics) *hashGate {
	return &hashGate{
		slots: make(chan struct{}, slots), queue: make(chan struct{}, 32*slots),
		wait: wait, release: release, m: m,
	}
}

// do runs fn in a slot, or returns ErrBusy.
func (g *hashGate) do(ctx context.Context, fn func() error) error {
	g.mu.Lock()
	g.active++
	g.mu.Unlock()
	ran := false
	defer func() { g.leave(ran) }()
	select {
	case g.slots <- struct{}{}:
	default:
		if err := g.await(ctx); err != nil {
			return err
		}
	}
	defer func() { <-g.slots }()
	g.m.hashing.Inc()
	defer g.m.hashing.Dec()
	ran = true
	return fn()
}

// await waits for a slot, within the queue bound and the wait.
func (g *hashGate) await(ctx context.Context) error {
	select {
	case g.queue <- struct{}{}:
		defer func() { <-g.queue }()
	default:
		g.m.hashBusy.Inc()
		return ErrBusy
	}
	t := time.NewTimer(g.wait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return nil
	case <-t.C:
		g.m.hashBusy.Inc()
		return ErrBusy
	case <-ctx.Done():
		return ctx.Err()
	}
}

// leave hands the memory back when a burst is over: no caller is running
// or waiting, and more than a slot's worth of hashes ran since the last
// time. Within releaseEvery of the last release, it is scheduled for
// later instead, so that the end of a burst is never skipped.
func (g *hashGate) leave(ran bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.active--
	if ran {
		g.sinceFree++
	}
	g.maybeRelease()
}

// maybeRelease runs with g.mu held.
func (g *hashGate) maybeRelease() {
	if g.active > 0 || g.sinceFree <= cap(g.slots) || g.pending || g.release == nil {
		return
	}
	if since := time.Since(g.lastRelease); since < releaseEvery {
		g.pending = true
		time.AfterFunc(releaseEvery-since, func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.pending = false
			g.maybeRelease()
		})
		return
	}
	g.sinceFree = 0
	g.lastRelease = time.Now()
	go g.release()
}
