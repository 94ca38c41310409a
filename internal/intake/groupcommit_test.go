package intake

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recordingStore is a Store whose CreateRequests records batch sizes, can
// be slowed down, and refuses any batch holding a poisoned request.
type recordingStore struct {
	Store
	mu      sync.Mutex
	sizes   []int
	stored  map[string]bool
	delay   time.Duration
	poison  string
	calls   atomic.Int64
	blocked chan struct{}
}

func (s *recordingStore) CreateRequests(ctx context.Context, batch []*Creation) error {
	s.calls.Add(1)
	if s.blocked != nil {
		<-s.blocked
	}
	time.Sleep(s.delay)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range batch {
		if c.Request.ID == s.poison {
			return errors.New("constraint violated")
		}
	}
	s.sizes = append(s.sizes, len(batch))
	for _, c := range batch {
		s.stored[c.Request.ID] = true
	}
	return nil
}

func creationWithID(id string) *Creation { return &Creation{Request: Request{ID: id}} }

func TestGroupCommitBatchesConcurrentCallers(t *testing.T) {
	store := &recordingStore{stored: map[string]bool{}, delay: 5 * time.Millisecond}
	g := newGroupCommitter(store, BatchOptions{MaxBatch: 64, Writers: 1})
	defer g.close()
	const callers = 200
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.commit(context.Background(), creationWithID(string(rune('a'+i%26))+string(rune(i)))); err != nil {
				t.Errorf("commit: %v", err)
			}
		}()
	}
	wg.Wait()
	total, biggest := 0, 0
	for _, n := range store.sizes {
		total += n
		biggest = max(biggest, n)
	}
	if total != callers || len(store.stored) != callers {
		t.Fatalf("committed %d (%d distinct), want %d", total, len(store.stored), callers)
	}
	if biggest < 2 || len(store.sizes) >= callers {
		t.Errorf("no grouping: %d transactions for %d callers (largest %d)", len(store.sizes), callers, biggest)
	}
	for _, n := range store.sizes {
		if n > 64 {
			t.Errorf("batch of %d exceeds MaxBatch 64", n)
		}
	}
}

func TestGroupCommitMaxBatchOneIsOneTransactionEach(t *testing.T) {
	store := &recordingStore{stored: map[string]bool{}}
	g := newGroupCommitter(store, BatchOptions{MaxBatch: 1, Writers: 2})
	defer g.close()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = g.commit(context.Background(), creationWithID(string(rune(1000+i))))
		}()
	}
	wg.Wait()
	if len(store.sizes) != 50 {
		t.Errorf("%d transactions for 50 requests with MaxBatch 1", len(store.sizes))
	}
}

func TestGroupCommitIsolatesAFailingRequest(t *testing.T) {
	store := &recordingStore{stored: map[string]bool{}, poison: "bad", delay: 20 * time.Millisecond}
	g := newGroupCommitter(store, BatchOptions{MaxBatch: 16, Writers: 1})
	defer g.close()
	// Hold the writer so that the next callers share one batch.
	first := make(chan error, 1)
	go func() { first <- g.commit(context.Background(), creationWithID("first")) }()
	time.Sleep(5 * time.Millisecond)
	results := map[string]chan error{}
	for _, id := range []string{"good-1", "bad", "good-2"} {
		ch := make(chan error, 1)
		results[id] = ch
		go func() { ch <- g.commit(context.Background(), creationWithID(id)) }()
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for id, ch := range results {
		err := <-ch
		if (id == "bad") != (err != nil) {
			t.Errorf("%s: err = %v", id, err)
		}
	}
	if !store.stored["good-1"] || !store.stored["good-2"] || store.stored["bad"] {
		t.Errorf("stored %v: the good neighbours of a bad request must be committed, the bad one not", store.stored)
	}
}

func TestGroupCommitOverloadAndClose(t *testing.T) {
	store := &recordingStore{stored: map[string]bool{}, blocked: make(chan struct{})}
	g := newGroupCommitter(store, BatchOptions{MaxBatch: 1, Writers: 1, Queue: 2})
	errs := make(chan error, 10)
	for i := range 3 { // one taken by the blocked writer, two queued
		go func() { errs <- g.commit(context.Background(), creationWithID(string(rune('x'+i)))) }()
		time.Sleep(10 * time.Millisecond)
	}
	if err := g.commit(context.Background(), creationWithID("overflow")); !errors.Is(err, ErrOverloaded) {
		t.Errorf("full queue: err = %v, want ErrOverloaded", err)
	}
	close(store.blocked)
	g.close() // commits what was queued before returning
	for range 3 {
		if err := <-errs; err != nil {
			t.Errorf("queued request: %v", err)
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
