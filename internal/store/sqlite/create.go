package sqlite

import (
	"context"
	"errors"
	"fmt"

	sqlitedrv "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/yolda/yolda/internal/intake"
)

// This file is batch creation: intake's group commit hands CreateRequests
// a batch of new requests, written in one transaction.

// CreateRequests implements intake.Store: the whole batch in one
// transaction, idempotency decided by the primary key of idempotency_keys.
func (s *Store) CreateRequests(ctx context.Context, batch []*intake.Creation) error {
	return rowError(s.tx(ctx, func(tx *txn) error {
		for _, c := range batch {
			c.ReplayOf, c.Err = "", nil
			r := &c.Request
			if c.IdempotencyKey != "" {
				claimed, err := claimKey(ctx, tx, c)
				if err != nil {
					return err
				}
				if !claimed {
					continue
				}
			}
			if _, err := tx.ExecContext(ctx, insertRequestSQL, requestArgs(r)...); err != nil {
				return fmt.Errorf("insert request %s: %w", r.ID, err)
			}
			for i := range r.Timeline {
				e := &r.Timeline[i]
				e.Version = r.Version
				if _, err := tx.ExecContext(ctx, insertTimelineSQL, r.ID, i+1, string(e.Status), toMicros(e.At), e.ActorID, e.Reason, e.Version); err != nil {
					return fmt.Errorf("insert timeline: %w", err)
				}
			}
			if err := insertOutbox(ctx, tx, c.Outbox); err != nil {
				return err
			}
		}
		return nil
	}))
}

// rowError wraps err with intake.ErrRowRejected when a row caused it (a
// constraint it violates, a value of the wrong type or size); everything
// else (a full disk, a locked file, a cancelled context) is the
// database's.
func rowError(err error) error {
	var e *sqlitedrv.Error
	if errors.As(err, &e) {
		switch e.Code() & 0xff { // the primary result code
		case sqlite3.SQLITE_CONSTRAINT, sqlite3.SQLITE_MISMATCH, sqlite3.SQLITE_TOOBIG:
			return fmt.Errorf("%w: %w", intake.ErrRowRejected, err)
		}
	}
	return err
}

// claimKey records c's idempotency key and reports whether c may be
// inserted. If the key was taken, it sets c.ReplayOf or c.Err.
func claimKey(ctx context.Context, tx *txn, c *intake.Creation) (bool, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO idempotency_keys (owner_id, key, fingerprint, request_id, created_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		c.Request.OwnerID, c.IdempotencyKey, c.Fingerprint, c.Request.ID, toMicros(c.Request.CreatedAt))
	if err != nil {
		return false, fmt.Errorf("claim idempotency key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return true, nil
	}
	var fingerprint, requestID string
	if err := tx.QueryRowContext(ctx, `SELECT fingerprint, request_id FROM idempotency_keys WHERE owner_id = ? AND key = ?`,
		c.Request.OwnerID, c.IdempotencyKey).Scan(&fingerprint, &requestID); err != nil {
		return false, fmt.Errorf("read idempotency key: %w", err)
	}
	if fingerprint != c.Fingerprint {
		c.Err = intake.ErrIdempotencyMismatch
	} else {
		c.ReplayOf = requestID
	}
	return false, nil
}
