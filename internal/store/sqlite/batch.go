package sqlite

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/notify"
	"github.com/yolda/yolda/internal/outbox"
)

// The batched writes of consumers: many messages' effects in one
// transaction, so that they share one fsync behind the single writer.

const receiptExistsSQL = `SELECT EXISTS (SELECT 1 FROM processed_messages WHERE consumer = ? AND message_id = ?)`

// UpdateRequests implements intake.Store. The single writer serialises
// batches, so each update reads the row as the transaction has it, its
// predecessors in the batch included. An error a row caused wraps
// intake.ErrRowRejected.
func (s *Store) UpdateRequests(ctx context.Context, batch []*intake.Update) error {
	return rowError(s.tx(ctx, func(tx *txn) error {
		for _, u := range batch {
			u.Result, u.Err = intake.Request{}, nil
			if err := applyUpdate(ctx, tx, u); err != nil {
				return err
			}
		}
		return nil
	}))
}

// applyUpdate applies one update of a batch. It returns only database
// errors; the update's own outcome goes to u.Err.
func applyUpdate(ctx context.Context, tx *txn, u *intake.Update) error {
	if rc := u.Receipt; rc != nil {
		var seen bool
		if err := tx.QueryRowContext(ctx, receiptExistsSQL, rc.Consumer, rc.MessageID).Scan(&seen); err != nil {
			return fmt.Errorf("read receipt: %w", err)
		}
		if seen {
			u.Err = outbox.ErrAlreadyProcessed
			return nil
		}
	}
	found, err := readRequests(ctx, tx, `WHERE id = ?`, u.RequestID)
	if err != nil {
		return err
	}
	if len(found) == 0 {
		u.Err = intake.ErrNotFound
		return nil
	}
	r := found[0]
	before := r.Version
	change, err := u.Apply(&r)
	switch {
	case err != nil:
	case change.Receipt != nil:
		err = fmt.Errorf("update of %s: its receipt belongs in Update.Receipt", u.RequestID)
	case r.Version != before+1:
		err = fmt.Errorf("update request %s: version %d after %d: %w", u.RequestID, r.Version, before, intake.ErrVersion)
	}
	if err != nil {
		u.Err = err
		return nil
	}
	if rc := u.Receipt; rc != nil {
		// Read as absent a moment ago, under the single writer.
		if err := recordReceipt(ctx, tx, *rc, r.UpdatedAt); err != nil {
			return err
		}
	}
	if err := writeChange(ctx, tx, &r, before, change); err != nil {
		return err
	}
	u.Result = r
	return nil
}

const insertNotificationSQL = `INSERT INTO notifications (id, request_id, recipient_id, channel, template, body, created_at)
	VALUES (?, ?, ?, ?, ?, ?, ?)`

// RecordNotificationBatch implements notify.Store.
func (s *Store) RecordNotificationBatch(ctx context.Context, rs []notify.Record) ([]bool, error) {
	stored := make([]bool, len(rs))
	err := rowError(s.tx(ctx, func(tx *txn) error {
		now := time.Now()
		for i, r := range rs {
			stored[i] = false
			err := recordReceipt(ctx, tx, r.Receipt, now)
			if errors.Is(err, outbox.ErrAlreadyProcessed) {
				continue
			}
			if err != nil {
				return err
			}
			for _, n := range r.Notifications {
				if _, err := tx.ExecContext(ctx, insertNotificationSQL, n.ID, n.RequestID, n.RecipientID, n.Channel, n.Template, n.Body, toMicros(n.CreatedAt)); err != nil {
					return fmt.Errorf("insert notification: %w", err)
				}
			}
			stored[i] = true
		}
		return nil
	}))
	if err != nil {
		return nil, err
	}
	return stored, nil
}
