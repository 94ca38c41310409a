package sqlite

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Transactions queued behind the writer commit together, and one that
// fails is rolled back alone: the others' rows are stored, its own are
// not, and each caller hears its own outcome.
func TestGroupCommitIsolatesMembers(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	held, release := make(chan struct{}), make(chan struct{})
	holding := make(chan error, 1)
	go func() {
		holding <- s.tx(ctx, func(*txn) error {
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	const n = 12
	errBad := errors.New("member fails")
	results := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i] = s.tx(ctx, func(tx *txn) error {
				if _, err := tx.ExecContext(ctx, `INSERT INTO outbox (id, subject, payload, created_at) VALUES (?, 's', x'', 0)`,
					fmt.Sprintf("m%02d", i)); err != nil {
					return err
				}
				if i%3 == 0 {
					return errBad
				}
				return nil
			})
		})
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(s.group.pending()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d transactions queued", len(s.group.pending()), n)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if err := <-holding; err != nil {
		t.Fatal(err)
	}
	for i := range n {
		var stored int
		if err := s.read.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE id = ?`, fmt.Sprintf("m%02d", i)).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		switch {
		case i%3 == 0 && (!errors.Is(results[i], errBad) || stored != 0):
			t.Errorf("member %d: %v, %d rows stored; want its own error and nothing stored", i, results[i], stored)
		case i%3 != 0 && (results[i] != nil || stored != 1):
			t.Errorf("member %d: %v, %d rows stored; want committed", i, results[i], stored)
		}
	}
}

// A queued transaction whose context ends before its turn is not run,
// and its caller is not held until the writer frees.
func TestGroupCommitAbandoned(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	held, release := make(chan struct{}), make(chan struct{})
	holding := make(chan error, 1)
	go func() {
		holding <- s.tx(ctx, func(*txn) error {
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	cctx, cancel := context.WithCancel(ctx)
	ran := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- s.tx(cctx, func(*txn) error { ran <- struct{}{}; return nil })
	}()
	for len(s.group.pending()) < 1 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("abandoned transaction: %v, want context.Canceled", err)
	}
	close(release)
	if err := <-holding; err != nil {
		t.Fatal(err)
	}
	// The next transaction runs once the abandoned one has been skipped.
	if err := s.tx(ctx, func(*txn) error { return nil }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ran:
		t.Error("the abandoned transaction ran")
	default:
	}
}

// pending is the queue, read under the lock.
func (g *writeGroup) pending() []*member {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.queue
}
