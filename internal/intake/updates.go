package intake

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The write path of consumers. Two entry points, for two kinds of handler:
//
//   - a batch consumer (bus.ConsumeBatch) hands all its deliveries'
//     updates to UpdateBatch: one transaction;
//   - handlers that take one message each and call out first (the
//     insurance worker) call Update: the updates of those that finish
//     together share a transaction, as concurrent creations do.
//
// Either way every update carries its message's receipt, so a message
// delivered again changes nothing.

// pendingUpdate is an update waiting in the group commit.
type pendingUpdate struct {
	u    *Update
	done chan error
}

// UpdateBatch applies us in one transaction (Store.UpdateRequests): each
// update's outcome is in its Err and Result. A non-nil error means none
// was applied; the caller may try them one by one.
func (s *Service) UpdateBatch(ctx context.Context, us []*Update) error {
	start := time.Now()
	err := s.store.UpdateRequests(ctx, us)
	s.observeUpdates(len(us), time.Since(start), err)
	if err != nil {
		return fmt.Errorf("update requests: %w", err)
	}
	return nil
}

// Update applies u together with the other updates in flight, in one
// transaction, and returns once it is committed: u.Err and u.Result say
// how it went. If the shared transaction fails, each update of it is
// tried alone, so that one the database refuses does not sink the others.
// Once queued, the update is committed (or refused) whatever ctx says.
// After Close (the API has stopped, workers are draining) each update is
// its own transaction.
func (s *Service) Update(ctx context.Context, u *Update) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p := &pendingUpdate{u: u, done: make(chan error, 1)}
	switch err := s.updates.add(p); {
	case errors.Is(err, ErrClosed):
		return s.UpdateBatch(ctx, []*Update{u})
	case err != nil:
		return fmt.Errorf("update request %s: %w", u.RequestID, err)
	}
	return <-p.done
}

// flushUpdates commits one batch of the group commit, in a transaction
// with a context of its own (commitTimeout): the callers wait for it
// whatever their own contexts say. If one update made the shared
// transaction fail (ErrRowRejected), each is committed alone, so that it
// cannot sink its neighbours; any other failure is the database's, and
// every caller gets it at once rather than once per update. (A consumer's
// update carries a receipt, so its caller may simply try again.)
func (s *Service) flushUpdates(batch []*pendingUpdate) {
	us := make([]*Update, len(batch))
	for i, p := range batch {
		us[i] = p.u
	}
	err := s.commitUpdates(us)
	if err == nil || len(batch) == 1 || !errors.Is(err, ErrRowRejected) {
		for _, p := range batch {
			p.done <- err
		}
		return
	}
	for _, p := range batch {
		p.done <- s.commitUpdates([]*Update{p.u})
	}
}

// commitUpdates is UpdateBatch in a transaction of its own.
func (s *Service) commitUpdates(us []*Update) error {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	return s.UpdateBatch(ctx, us)
}

func (s *Service) observeUpdates(size int, took time.Duration, err error) {
	if s.updatesObserve != nil {
		s.updatesObserve(size, took, err)
	}
	if err == nil {
		s.committed()
	}
}
