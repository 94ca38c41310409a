package sqlite

import (
	"context"
)

// HoldWriter takes the single writer and keeps it until release is
// closed; held is closed once it has it.
func (s *Store) HoldWriter(ctx context.Context, held chan<- struct{}, release <-chan struct{}) error {
	return s.tx(ctx, func(*txn) error {
		close(held)
		<-release
		return nil
	})
}

// CleanupTimeout is how long work after the caller's context ended may take.
const CleanupTimeout = cleanupTimeout
