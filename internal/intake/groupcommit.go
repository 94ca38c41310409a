package intake

import (
	"context"
	"errors"
	"sync"
	"time"
)

// commitTimeout bounds one transaction of the group commit, and
// resolveTimeout the reads that find out whether a failed one committed.
// Each gets a context of its own, not the caller's: callers are waiting for
// the answer even while the server shuts down (until its shutdown deadline,
// see shutdown), and a retry never inherits a spent deadline.
const (
	commitTimeout  = 30 * time.Second
	resolveTimeout = 5 * time.Second
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
	store     Store
	queue     chan *pendingCreation
	maxBatch  int
	linger    time.Duration
	observe   func(size int, took time.Duration, err error)
	committed func()

	// ctx bounds every commit; shutdown cancels it once its own deadline
	// has passed, so that a database that stopped answering cannot hold
	// the process.
	ctx    context.Context
	cancel context.CancelFunc

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

// newGroupCommitter starts the writers. committed, if set, is called after
// every transaction that committed (to wake the relay).
func newGroupCommitter(store Store, o BatchOptions, committed func()) *groupCommitter {
	o = o.withDefaults()
	g := &groupCommitter{
		store:     store,
		queue:     make(chan *pendingCreation, o.Queue),
		maxBatch:  o.MaxBatch,
		linger:    o.Linger,
		observe:   o.Observe,
		committed: committed,
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	if g.observe == nil {
		g.observe = func(int, time.Duration, error) {}
	}
	if g.committed == nil {
		g.committed = func() {}
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
func (g *groupCommitter) close() { _ = g.shutdown(context.Background()) }

// shutdown stops taking work and commits what is queued until ctx ends;
// then it abandons the commits still in flight (their callers get an
// error) and fails what is still queued, and returns ctx's error. It is
// safe to call more than once.
func (g *groupCommitter) shutdown(ctx context.Context) error {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.queue)
	}
	g.mu.Unlock()
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
		g.cancel()
		return nil
	case <-ctx.Done():
		g.cancel()
		<-done
		return ctx.Err()
	}
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

// flush commits a batch and answers each of its callers.
//
// If one row made the shared transaction fail (ErrRowRejected), each
// creation is committed alone, so that one bad row cannot sink its
// neighbours. Any other failure is the database's (a timeout, a lost
// connection): splitting would repeat it once per row, so the batch fails
// at once, except that a commit whose answer was lost may have happened;
// then whoever's request is stored is answered with it (see resolve).
func (g *groupCommitter) flush(batch []*pendingCreation) {
	creations := make([]*Creation, len(batch))
	for i, p := range batch {
		creations[i] = p.c
	}
	err := g.run(creations)
	switch {
	case err == nil:
		for _, p := range batch {
			p.done <- nil
		}
	case errors.Is(err, ErrRowRejected) && len(batch) > 1:
		for _, p := range batch {
			p.c.ReplayOf, p.c.Err = "", nil
			switch err := g.run([]*Creation{p.c}); {
			case err == nil, errors.Is(err, ErrRowRejected):
				p.done <- err
			default:
				g.resolve([]*pendingCreation{p}, err)
			}
		}
	case errors.Is(err, ErrRowRejected):
		batch[0].done <- err
	default:
		g.resolve(batch, err)
	}
}

// run commits creations in one transaction of its own, and reports it.
func (g *groupCommitter) run(creations []*Creation) error {
	ctx, cancel := context.WithTimeout(g.ctx, commitTimeout)
	defer cancel()
	start := time.Now()
	err := g.store.CreateRequests(ctx, creations)
	g.observe(len(creations), time.Since(start), err)
	if err == nil {
		g.committed()
	}
	return err
}

// resolve answers the callers of a batch whose transaction failed with
// cause, a database failure after which the batch may have committed
// (the connection was lost during COMMIT, say). The transaction is atomic:
// if any of its requests is stored, all of it committed. Then a caller
// whose request is stored gets it, and one whose request is not was a
// replay of an idempotency key (it is committed alone again, which now
// finds the key); otherwise, or if the database cannot tell, every caller
// gets cause. So a client whose request was committed is never told it
// failed when the database can say otherwise, and nothing is inserted
// twice (retrying the batch would hit the primary key).
func (g *groupCommitter) resolve(batch []*pendingCreation, cause error) {
	ctx, cancel := context.WithTimeout(g.ctx, resolveTimeout)
	stored := make([]bool, len(batch))
	committed, known := false, true
	for i, p := range batch {
		_, err := g.store.Request(ctx, p.c.Request.ID)
		switch {
		case err == nil:
			stored[i], committed = true, true
		case !errors.Is(err, ErrNotFound):
			known = false
		}
		if !known {
			break
		}
	}
	cancel()
	if !committed {
		for _, p := range batch {
			p.done <- cause
		}
		return
	}
	g.committed()
	for i, p := range batch {
		switch {
		case stored[i]:
			p.c.ReplayOf, p.c.Err = "", nil
			p.done <- nil
		case !known:
			p.done <- cause
		default:
			p.c.ReplayOf, p.c.Err = "", nil
			p.done <- g.run([]*Creation{p.c})
		}
	}
}
