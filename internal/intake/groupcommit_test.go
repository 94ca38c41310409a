package intake

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// recordingStore is a Store whose CreateRequests records batch sizes, can
// hold its callers at a gate, refuses any batch holding a poisoned request
// (a row error), and can fail like a sick database: before committing, or
// after (the answer to COMMIT lost).
type recordingStore struct {
	Store
	mu     sync.Mutex
	sizes  []int
	stored map[string]bool
	poison string
	// gate, if set, holds every CreateRequests until it is closed; entered
	// is told each time one is held.
	gate    chan struct{}
	entered chan struct{}
	// failBefore makes the call of that number (from 1) fail without
	// committing; failAfter makes it commit, then fail.
	failBefore, failAfter int
	calls                 int
}

var errLost = errors.New("connection lost")

func newRecordingStore() *recordingStore { return &recordingStore{stored: map[string]bool{}} }

func (s *recordingStore) CreateRequests(ctx context.Context, batch []*Creation) error {
	if s.gate != nil {
		if s.entered != nil {
			s.entered <- struct{}{}
		}
		<-s.gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sizes = append(s.sizes, len(batch))
	s.calls++
	if s.calls == s.failBefore {
		return errLost
	}
	for _, c := range batch {
		if c.Request.ID == s.poison {
			return fmt.Errorf("insert: %w: constraint violated", ErrRowRejected)
		}
	}
	for _, c := range batch {
		s.stored[c.Request.ID] = true
	}
	if s.calls == s.failAfter {
		return fmt.Errorf("commit: %w", errLost)
	}
	return nil
}

func (s *recordingStore) Request(ctx context.Context, id string) (Request, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stored[id] {
		return Request{}, ErrNotFound
	}
	return Request{ID: id}, nil
}

func (s *recordingStore) batchSizes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.sizes...)
}

func creationWithID(id string) *Creation { return &Creation{Request: Request{ID: id}} }

// waitQueued waits until n creations wait in the committer's queue.
func waitQueued(t *testing.T, g *groupCommitter, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(g.queue) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d creations queued, want %d", len(g.queue), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// hold makes the store hold the writer in its next commit; it returns once
// the writer is held, and the function that lets it go.
func hold(t *testing.T, s *recordingStore, g *groupCommitter, first *Creation) (release func() error) {
	t.Helper()
	s.gate, s.entered = make(chan struct{}), make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() { done <- g.commit(context.Background(), first) }()
	<-s.entered
	return func() error {
		s.entered = nil
		close(s.gate)
		return <-done
	}
}

// commitAll submits creations and returns their results by id.
func commitAll(g *groupCommitter, ids ...string) map[string]chan error {
	out := map[string]chan error{}
	for _, id := range ids {
		ch := make(chan error, 1)
		out[id] = ch
		go func() { ch <- g.commit(context.Background(), creationWithID(id)) }()
	}
	return out
}

// observed records what the committer reports.
type observed struct {
	mu        sync.Mutex
	sizes     []int
	errs      int
	committed int
}

func (o *observed) options(b BatchOptions) BatchOptions {
	b.Observe = func(size int, _ time.Duration, err error) {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.sizes = append(o.sizes, size)
		if err != nil {
			o.errs++
		}
	}
	return b
}

func (o *observed) hook() { o.mu.Lock(); o.committed++; o.mu.Unlock() }

func TestGroupCommitBatchesConcurrentCallers(t *testing.T) {
	store := newRecordingStore()
	g := newGroupCommitter(store, BatchOptions{MaxBatch: 64, Writers: 1}, nil)
	defer g.close()
	release := hold(t, store, g, creationWithID("first"))
	const callers = 100
	var ids []string
	for i := range callers {
		ids = append(ids, fmt.Sprintf("r%d", i))
	}
	results := commitAll(g, ids...)
	waitQueued(t, g, callers)
	if err := release(); err != nil {
		t.Fatal(err)
	}
	for id, ch := range results {
		if err := <-ch; err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	sizes := store.batchSizes()
	// The held one, then what queued meanwhile, 64 at most per batch.
	if want := []int{1, 64, 36}; fmt.Sprint(sizes) != fmt.Sprint(want) {
		t.Errorf("batch sizes %v, want %v", sizes, want)
	}
	if len(store.stored) != callers+1 {
		t.Errorf("stored %d, want %d", len(store.stored), callers+1)
	}
}

func TestGroupCommitMaxBatchOneIsOneTransactionEach(t *testing.T) {
	store := newRecordingStore()
	g := newGroupCommitter(store, BatchOptions{MaxBatch: 1, Writers: 2}, nil)
	defer g.close()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = g.commit(context.Background(), creationWithID(fmt.Sprint(i)))
		}()
	}
	wg.Wait()
	if len(store.sizes) != 50 {
		t.Errorf("%d transactions for 50 requests with MaxBatch 1", len(store.sizes))
	}
}

// A row error in a shared transaction: each creation is committed alone,
// the good neighbours succeed, and the retries are observed and wake the
// relay like any commit.
func TestGroupCommitIsolatesAFailingRequest(t *testing.T) {
	store := newRecordingStore()
	store.poison = "bad"
	var obs observed
	g := newGroupCommitter(store, obs.options(BatchOptions{MaxBatch: 16, Writers: 1}), obs.hook)
	defer g.close()
	release := hold(t, store, g, creationWithID("first"))
	results := commitAll(g, "good-1", "bad", "good-2")
	waitQueued(t, g, 3)
	if err := release(); err != nil {
		t.Fatal(err)
	}
	for id, ch := range results {
		err := <-ch
		if (id == "bad") != (err != nil) || (err != nil && !errors.Is(err, ErrRowRejected)) {
			t.Errorf("%s: err = %v", id, err)
		}
	}
	if sizes := store.batchSizes(); fmt.Sprint(sizes) != "[1 3 1 1 1]" {
		t.Errorf("batch sizes %v: want the held one, the shared batch of 3, then each alone", sizes)
	}
	if !store.stored["good-1"] || !store.stored["good-2"] || store.stored["bad"] {
		t.Errorf("stored %v: the good neighbours of a bad request must be committed, the bad one not", store.stored)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if fmt.Sprint(obs.sizes) != "[1 3 1 1 1]" || obs.errs != 2 || obs.committed != 3 {
		t.Errorf("observed sizes %v with %d errors and %d commits; want every transaction, the 2 failed, 3 committed",
			obs.sizes, obs.errs, obs.committed)
	}
}

// A database failure (not a row's) is not split into one transaction per
// row: the batch fails at once, every caller told.
func TestGroupCommitFailsFastWhenTheDatabaseFails(t *testing.T) {
	store := newRecordingStore()
	var obs observed
	g := newGroupCommitter(store, obs.options(BatchOptions{MaxBatch: 16, Writers: 1}), obs.hook)
	defer g.close()
	release := hold(t, store, g, creationWithID("first"))
	store.failBefore = 2 // the batch after the held one
	results := commitAll(g, "a", "b", "c", "d")
	waitQueued(t, g, 4)
	// The held commit succeeds; the next batch finds the database gone.
	if err := release(); err != nil {
		t.Fatal(err)
	}
	for id, ch := range results {
		if err := <-ch; !errors.Is(err, errLost) {
			t.Errorf("%s: err = %v, want the database's error", id, err)
		}
	}
	if sizes := store.batchSizes(); fmt.Sprint(sizes) != "[1 4]" {
		t.Errorf("batch sizes %v: a database failure must not be retried row by row", sizes)
	}
	if len(store.stored) != 1 {
		t.Errorf("stored %v", store.stored)
	}
}

// The commit happened but its answer was lost: the callers are answered
// from what is stored, not with an error, and nothing is inserted twice.
func TestGroupCommitAmbiguousCommitAnswersWithTheStoredRequests(t *testing.T) {
	store := newRecordingStore()
	var obs observed
	g := newGroupCommitter(store, obs.options(BatchOptions{MaxBatch: 16, Writers: 1}), obs.hook)
	defer g.close()
	release := hold(t, store, g, creationWithID("first"))
	store.failAfter = 2
	results := commitAll(g, "a", "b", "c")
	waitQueued(t, g, 3)
	if err := release(); err != nil {
		t.Fatal(err)
	}
	for id, ch := range results {
		if err := <-ch; err != nil {
			t.Errorf("%s: err = %v, want its stored request", id, err)
		}
	}
	if sizes := store.batchSizes(); fmt.Sprint(sizes) != "[1 3]" {
		t.Errorf("batch sizes %v: the committed batch must not be inserted again", sizes)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.committed != 2 {
		t.Errorf("relay woken %d times, want 2 (the held commit and the resolved one)", obs.committed)
	}
}

// Linger (YOLDA_INTAKE_BATCH_WAIT): a writer waits up to the linger for
// more requests; a full batch does not wait for it, and a lone request
// waits for it to pass.
func TestGroupCommitLinger(t *testing.T) {
	t.Run("a full batch goes at once", func(t *testing.T) {
		store := newRecordingStore()
		g := newGroupCommitter(store, BatchOptions{MaxBatch: 4, Writers: 1, Linger: time.Hour}, nil)
		defer g.close()
		results := commitAll(g, "a", "b", "c", "d")
		for id, ch := range results {
			select {
			case err := <-ch:
				if err != nil {
					t.Errorf("%s: %v", id, err)
				}
			case <-time.After(time.Minute):
				t.Fatal("a full batch waited for the linger")
			}
		}
		// The first is taken alone or with others; whatever arrived within
		// the linger joined it, up to MaxBatch.
		if sizes := store.batchSizes(); len(sizes) != 1 || sizes[0] != 4 {
			t.Errorf("batch sizes %v, want one batch of 4", sizes)
		}
	})
	t.Run("a lone request waits for the linger", func(t *testing.T) {
		store := newRecordingStore()
		const linger = 30 * time.Millisecond
		g := newGroupCommitter(store, BatchOptions{MaxBatch: 4, Writers: 1, Linger: linger}, nil)
		defer g.close()
		start := time.Now()
		if err := g.commit(context.Background(), creationWithID("alone")); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < linger {
			t.Errorf("committed after %s, before the %s linger", took, linger)
		}
	})
	t.Run("no linger: a lone request does not wait", func(t *testing.T) {
		store := newRecordingStore()
		g := newGroupCommitter(store, BatchOptions{MaxBatch: 4, Writers: 1}, nil)
		defer g.close()
		done := make(chan error, 1)
		go func() { done <- g.commit(context.Background(), creationWithID("alone")) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(time.Minute):
			t.Fatal("a lone request waited")
		}
	})
}

func TestGroupCommitOverloadAndClose(t *testing.T) {
	store := newRecordingStore()
	g := newGroupCommitter(store, BatchOptions{MaxBatch: 1, Writers: 1, Queue: 2}, nil)
	release := hold(t, store, g, creationWithID("held"))
	results := commitAll(g, "x", "y")
	waitQueued(t, g, 2)
	if err := g.commit(context.Background(), creationWithID("overflow")); !errors.Is(err, ErrOverloaded) {
		t.Errorf("full queue: err = %v, want ErrOverloaded", err)
	}
	closed := make(chan struct{})
	go func() { g.close(); close(closed) }() // commits what was queued before returning
	if err := release(); err != nil {
		t.Errorf("held request: %v", err)
	}
	<-closed
	for id, ch := range results {
		if err := <-ch; err != nil {
			t.Errorf("queued request %s: %v", id, err)
		}
	}
	if len(store.stored) != 3 {
		t.Errorf("close drained %d of 3 queued requests", len(store.stored))
	}
	if err := g.commit(context.Background(), creationWithID("late")); !errors.Is(err, ErrClosed) {
		t.Errorf("after close: err = %v, want ErrClosed", err)
	}
	g.close() // idempotent
}

// Shutdown within a deadline: a database that does not answer cannot hold
// it past the deadline; the callers in flight and queued get an error.
func TestGroupCommitShutdownAbandonsAStuckDatabase(t *testing.T) {
	store := newRecordingStore()
	g := newGroupCommitter(&stuckStore{store}, BatchOptions{MaxBatch: 1, Writers: 1}, nil)
	results := commitAll(g, "a", "b")
	waitQueued(t, g, 1) // a is in the stuck commit, b waits
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- g.shutdown(ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("shutdown: %v, want the deadline's error", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("shutdown waited for a database that does not answer")
	}
	for id, ch := range results {
		if err := <-ch; err == nil {
			t.Errorf("%s committed on a stuck database", id)
		}
	}
}

// stuckStore never answers a commit until its context ends.
type stuckStore struct{ *recordingStore }

func (s *stuckStore) CreateRequests(ctx context.Context, _ []*Creation) error {
	<-ctx.Done()
	return ctx.Err()
}
