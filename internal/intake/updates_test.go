package intake

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/outbox"
)

// updateStore is a Store whose UpdateRequests records batches, can be held
// until released, and refuses any batch holding a poisoned request, as a
// constraint would.
type updateStore struct {
	Store
	mu      sync.Mutex
	batches [][]string
	applied map[string]int
	poison  string
	hold    chan struct{} // the first call waits on it
	held    chan struct{} // closed when the first call is waiting
	once    sync.Once
}

func (s *updateStore) UpdateRequests(ctx context.Context, batch []*Update) error {
	s.once.Do(func() {
		if s.hold != nil {
			close(s.held)
			<-s.hold
		}
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, len(batch))
	for i, u := range batch {
		ids[i] = u.RequestID
	}
	s.batches = append(s.batches, ids)
	for _, u := range batch {
		if u.RequestID == s.poison {
			return fmt.Errorf("%w: constraint violated", ErrRowRejected)
		}
	}
	for _, u := range batch {
		s.applied[u.RequestID]++
		u.Result = Request{ID: u.RequestID, Version: s.applied[u.RequestID]}
	}
	return nil
}

func newUpdateService(store *updateStore) (*Service, *int) {
	woken := new(int)
	var mu sync.Mutex
	svc := NewService(store, Options{Updates: BatchOptions{MaxBatch: 64, Writers: 1}, Committed: func() {
		mu.Lock()
		*woken++
		mu.Unlock()
	}})
	return svc, woken
}

// updateAll calls Update for each id concurrently and returns each call's
// error by id.
func updateAll(svc *Service, ids []string) map[string]error {
	var mu sync.Mutex
	errs := map[string]error{}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			u := &Update{RequestID: id, Receipt: &outbox.Receipt{Consumer: "c", MessageID: "m-" + id}}
			err := svc.Update(context.Background(), u)
			if err == nil {
				err = u.Err
			}
			mu.Lock()
			errs[id] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	return errs
}

// Updates that arrive while a transaction is in flight share the next one.
func TestUpdatesShareTransactions(t *testing.T) {
	store := &updateStore{applied: map[string]int{}, hold: make(chan struct{}), held: make(chan struct{})}
	svc, _ := newUpdateService(store)
	defer svc.Close()
	first := make(chan map[string]error, 1)
	go func() { first <- updateAll(svc, []string{"req_first"}) }()
	<-store.held // the writer holds the first transaction open
	var ids []string
	for i := range 40 {
		ids = append(ids, fmt.Sprintf("req_%02d", i))
	}
	done := make(chan map[string]error, 1)
	go func() { done <- updateAll(svc, ids) }()
	// All 40 queue behind the held transaction before it is let go.
	queued(t, svc, len(ids))
	close(store.hold)
	for id, err := range <-done {
		if err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	<-first
	store.mu.Lock()
	defer store.mu.Unlock()
	if len(store.batches) != 2 || len(store.batches[1]) != 40 {
		sizes := []int{}
		for _, b := range store.batches {
			sizes = append(sizes, len(b))
		}
		t.Errorf("batch sizes %v, want [1 40]", sizes)
	}
}

// A transaction the database refuses is retried one update at a time: the
// good ones are applied once, the bad one alone fails.
func TestUpdateBatchFailureIsolatesTheBadUpdate(t *testing.T) {
	store := &updateStore{applied: map[string]int{}, poison: "req_bad", hold: make(chan struct{}), held: make(chan struct{})}
	svc, woken := newUpdateService(store)
	defer svc.Close()
	go updateAll(svc, []string{"req_hold"})
	<-store.held
	ids := []string{"req_a", "req_bad", "req_b", "req_c"}
	done := make(chan map[string]error, 1)
	go func() { done <- updateAll(svc, ids) }()
	queued(t, svc, len(ids))
	close(store.hold)
	errs := <-done
	for _, id := range ids {
		switch {
		case id == "req_bad" && errs[id] == nil:
			t.Errorf("the poisoned update succeeded")
		case id != "req_bad" && errs[id] != nil:
			t.Errorf("%s failed with its poisoned neighbour: %v", id, errs[id])
		}
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	for _, id := range []string{"req_a", "req_b", "req_c"} {
		if store.applied[id] != 1 {
			t.Errorf("%s applied %d times", id, store.applied[id])
		}
	}
	if store.applied["req_bad"] != 0 {
		t.Error("poison applied")
	}
	if *woken == 0 {
		t.Error("the relay was never woken after a commit")
	}
}

// A failure that is the database's (a timeout, a lost connection) fails
// every update of the batch at once: tried one by one it would fail as
// many times.
func TestUpdateBatchDatabaseFailureIsNotSplit(t *testing.T) {
	store := &updateStore{applied: map[string]int{}, hold: make(chan struct{}), held: make(chan struct{})}
	svc, _ := newUpdateService(store)
	defer svc.Close()
	go updateAll(svc, []string{"req_hold"})
	<-store.held
	sick := &sickStore{updateStore: store, err: errors.New("connection reset")}
	svc.store = sick
	ids := []string{"req_a", "req_b", "req_c"}
	done := make(chan map[string]error, 1)
	go func() { done <- updateAll(svc, ids) }()
	queued(t, svc, len(ids))
	close(store.hold)
	for id, err := range <-done {
		if !errors.Is(err, sick.err) {
			t.Errorf("%s: %v, want the database's error", id, err)
		}
	}
	if n := sick.calls.Load(); n != 1 {
		t.Errorf("%d transactions tried for a batch the database failed, want 1", n)
	}
}

type sickStore struct {
	*updateStore
	err   error
	calls atomic.Int64
}

func (s *sickStore) UpdateRequests(context.Context, []*Update) error {
	s.calls.Add(1)
	return s.err
}

// After Close (the API has drained, workers still finish), an update is
// its own transaction rather than refused.
func TestUpdateAfterClose(t *testing.T) {
	store := &updateStore{applied: map[string]int{}}
	svc, _ := newUpdateService(store)
	svc.Close()
	u := &Update{RequestID: "req_late"}
	if err := svc.Update(context.Background(), u); err != nil || u.Err != nil || u.Result.ID != "req_late" {
		t.Fatalf("update after close: %v %v %+v", err, u.Err, u.Result)
	}
}

// queued waits until n updates wait in the group commit's queue.
func queued(t *testing.T, svc *Service, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(svc.updates.queue) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d updates queued, want %d", len(svc.updates.queue), n)
		}
		time.Sleep(time.Millisecond)
	}
}
