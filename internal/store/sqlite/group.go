package sqlite

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Group commit of the one writer. Every write transaction ends in an
// fsync (synchronous=FULL), a few milliseconds the writer is held for
// nothing else; under load intake, the dispatch workers, notify, the
// relay and the expirer queue for the writer, and the fsyncs, not the
// work, bound how many transactions it commits. So the transactions
// waiting when the writer frees run together, one after another, in one
// SQLite transaction and share its commit: each in a savepoint, so one
// that fails is rolled back alone and returns its error, as it would
// have alone. A caller hears back once the group has committed; if the
// commit fails, nothing of any member was committed and each gets the
// error.

// maxGroup bounds the transactions committed together, so the first of
// them does not wait long for the last.
const maxGroup = 16

// writeGroup queues write transactions for the writer.
type writeGroup struct {
	mu      sync.Mutex
	queue   []*member
	running bool // a goroutine is running groups
}

// member is one queued transaction.
type member struct {
	ctx   context.Context
	fn    func(*txn) error
	state atomic.Int32 // queued, taken or abandoned
	done  chan error
}

const (
	queued int32 = iota
	taken
	abandoned
)

// tx runs fn in a write transaction (with others, see above) and commits
// it if fn returns nil.
func (s *Store) tx(ctx context.Context, fn func(*txn) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	m := &member{ctx: ctx, fn: fn, done: make(chan error, 1)}
	g := &s.group
	g.mu.Lock()
	g.queue = append(g.queue, m)
	lead := !g.running
	g.running = true
	g.mu.Unlock()
	if lead {
		s.runGroups()
	}
	select {
	case err := <-m.done:
		return err
	case <-ctx.Done():
		if m.state.CompareAndSwap(queued, abandoned) {
			return fmt.Errorf("begin: %w", ctx.Err())
		}
		return <-m.done // running: its outcome is on its way
	}
}

// runGroups commits the group at the head of the queue, then hands the
// rest of the queue to a new goroutine: the caller that found no one
// running runs the first group (its own transaction is in it unless
// maxGroup were queued before it) and is not held past it.
func (s *Store) runGroups() {
	batch := s.group.take()
	if batch == nil {
		return
	}
	s.commitGroup(batch)
	go s.runGroups()
}

// take takes the next group off the queue; with none left it is no
// longer running.
func (g *writeGroup) take() []*member {
	g.mu.Lock()
	defer g.mu.Unlock()
	var batch []*member
	n := 0
	for n < len(g.queue) && len(batch) < maxGroup {
		m := g.queue[n]
		n++
		if m.state.CompareAndSwap(queued, taken) {
			batch = append(batch, m)
		}
	}
	g.queue = g.queue[n:]
	if len(g.queue) == 0 {
		g.queue = nil // let the taken members go
	}
	if len(batch) == 0 {
		g.running = false
	}
	return batch
}

// commitGroup runs the members' functions in one transaction and commits.
// A member's statements run on its own context without its cancellation:
// an interrupted write would roll the whole transaction back, the other
// members' work with it. A member whose context has ended before its turn
// is not run.
func (s *Store) commitGroup(batch []*member) {
	ctx := context.Background()
	results := make([]error, len(batch))
	finish := func(err error) {
		for i, m := range batch {
			if results[i] == nil {
				results[i] = err
			}
			m.done <- results[i]
		}
	}
	tx, err := s.write.begin(ctx, nil)
	if err != nil {
		finish(fmt.Errorf("begin: %w", err))
		return
	}
	defer tx.ended(ctx)
	if len(batch) == 1 { // alone: no savepoint
		m := batch[0]
		if err := m.ctx.Err(); err != nil {
			results[0] = fmt.Errorf("begin: %w", err)
		} else {
			results[0] = m.fn(tx)
		}
		if results[0] != nil {
			_ = tx.Rollback()
			finish(nil)
			return
		}
		if err := tx.Commit(); err != nil {
			finish(fmt.Errorf("commit: %w", err))
			return
		}
		finish(nil)
		return
	}
	ran := false
	for i, m := range batch {
		if err := m.ctx.Err(); err != nil {
			results[i] = fmt.Errorf("begin: %w", err)
			continue
		}
		if err := savepoint(ctx, tx, m, &results[i]); err != nil {
			// The transaction is gone (SQLite rolls back the whole of it
			// on some errors): nothing of the group is committed.
			_ = tx.Rollback()
			for j := range results {
				if results[j] == nil {
					results[j] = err
				}
			}
			finish(nil)
			return
		}
		ran = ran || results[i] == nil
	}
	if !ran {
		_ = tx.Rollback()
		finish(nil)
		return
	}
	if err := tx.Commit(); err != nil {
		finish(fmt.Errorf("commit: %w", err))
		return
	}
	finish(nil)
}

// savepoint runs m's function in a savepoint of tx and sets *result to
// its error, rolling back to the savepoint if there is one. It returns an
// error when the transaction cannot go on.
func savepoint(ctx context.Context, tx *txn, m *member, result *error) error {
	if _, err := tx.ExecContext(ctx, `SAVEPOINT member`); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	tx.override = context.WithoutCancel(m.ctx)
	*result = m.fn(tx)
	tx.override = nil
	if *result != nil {
		if _, err := tx.ExecContext(ctx, `ROLLBACK TO member`); err != nil {
			return errors.Join(*result, fmt.Errorf("roll back to savepoint: %w", err))
		}
	}
	if _, err := tx.ExecContext(ctx, `RELEASE member`); err != nil {
		return fmt.Errorf("release savepoint: %w", err)
	}
	return nil
}
