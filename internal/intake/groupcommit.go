package intake

import (
	"context"
	"sync"
	"time"
)

// groupCommitter turns many concurrent creations into few transactions.
//
// A database commit costs a WAL flush whatever it holds, so under load the
// cheapest way to accept N requests is one transaction of N. Writers take
// whatever has queued while the previous commit was in flight (up to
// maxBatch), optionally linger for more, and commit it at once; every caller
// is answered only after the commit that holds its request. At low load a
// batch is one request and nothing waits. With maxBatch = 1 this is plain
// one-transaction-per-request, kept for comparison in benchmarks.
type groupCommitter struct {
	store    Store
	queue    chan *pendingCreation
	maxBatch int
	linger   time.Duration
	observe  func(size int, took time.Duration, err error)

	mu     sync.RWMutex
	closed bool
	wg     sync.WaitGroup
}

type pendingCreation struct {
	c    *Creation
	done chan error
}

// BatchOptions tune the group commit.
type BatchOptions struct {
	// MaxBatch caps how many requests share one transaction; 1 disables
	// grouping.
	MaxBatch int
	// Writers is how many transactions may be in flight at once. SQLite
	// has one writer whatever this says; PostgreSQL gains from a few.
	Writers int
	// Linger is how long a writer waits for more requests after the first
	// before it commits. Zero commits whatever has queued.
	Linger time.Duration
	// Queue bounds the requests waiting for a writer; past it intake
	// answers ErrOverloaded instead of queueing without end.
	Queue int
	// Observe, if set, is told about every commit (for metrics).
	Observe func(size int, took time.Duration, err error)
}

func (o BatchOptions) withDefaults() BatchOptions {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 128
	}
	if o.Writers <= 0 {
		o.Writers = 1
	}
	if o.Queue <= 0 {
		o.Queue = 8192
	}
	return o
}

func newGroupCommitter(store Store, o BatchOptions) *groupCommitter {
	o = o.withDefaults()
	g := &groupCommitter{
		store:    store,
		queue:    make(chan *pendingCreation, o.Queue),
		maxBatch: o.MaxBatch,
		linger:   o.Linger,
		observe:  o.Observe,
	}
	for range o.Writers {
		g.wg.Add(1)
		go g.write()
	}
	return g
}

// commit queues c and waits until the transaction holding it has ended.
// The caller's context only bounds the wait for a queue slot: once queued,
// the creation is committed even if the caller goes away, because its
// client may retry with the same Idempotency-Key and must then find it.
func (g *groupCommitter) commit(ctx context.Context, c *Creation) error {
	p := &pendingCreation{c: c, done: make(chan error, 1)}
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return ErrClosed
	}
	select {
	case g.queue <- p:
	default:
		g.mu.RUnlock()
		return ErrOverloaded
	}
	g.mu.RUnlock()
	return <-p.done
}

// close stops taking work, commits what is queued and waits for the
// writers. It is safe to call more than once.
func (g *groupCommitter) close() {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.queue)
	}
	g.mu.Unlock()
	g.wg.Wait()
}

func (g *groupCommitter) write() {
	defer g.wg.Done()
	batch := make([]*pendingCreation, 0, g.maxBatch)
	for first := range g.queue {
		batch = append(batch[:0], first)
		batch = g.fill(batch)
		g.flush(batch)
	}
}

// fill adds to batch whatever is already queued and, with a linger, what
// arrives within it.
func (g *groupCommitter) fill(batch []*pendingCreation) []*pendingCreation {
	var deadline <-chan time.Time
	if g.linger > 0 {
		t := time.NewTimer(g.linger)
		defer t.Stop()
		deadline = t.C
	}
	for len(batch) < g.maxBatch {
		if deadline == nil {
			select {
			case p, ok := <-g.queue:
				if !ok {
					return batch
				}
				batch = append(batch, p)
				continue
			default:
				return batch
			}
		}
		select {
		case p, ok := <-g.queue:
			if !ok {
				return batch
			}
			batch = append(batch, p)
		case <-deadline:
			return batch
		}
	}
	return batch
}

// flush commits a batch. If the shared transaction fails, each creation is
// retried alone so that one bad row cannot sink its neighbours; whoever
// still fails gets the error.
func (g *groupCommitter) flush(batch []*pendingCreation) {
	// Commits must finish even while the server shuts down; the callers
	// are waiting for them.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	creations := make([]*Creation, len(batch))
	for i, p := range batch {
		creations[i] = p.c
	}
	start := time.Now()
	err := g.store.CreateRequests(ctx, creations)
	if g.observe != nil {
		g.observe(len(batch), time.Since(start), err)
	}
	if err == nil || len(batch) == 1 {
		for _, p := range batch {
			p.done <- err
		}
		return
	}
	for _, p := range batch {
		p.c.ReplayOf, p.c.Err = "", nil
		p.done <- g.store.CreateRequests(ctx, []*Creation{p.c})
	}
}

// withCommitHook chains hook after o.Observe for every successful commit.
func withCommitHook(o BatchOptions, hook func()) BatchOptions {
	if hook == nil {
		return o
	}
	observe := o.Observe
	o.Observe = func(size int, took time.Duration, err error) {
		if observe != nil {
			observe(size, took, err)
		}
		if err == nil {
			hook()
		}
	}
	return o
}
