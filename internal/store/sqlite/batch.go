package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/notify"
	"github.com/yolda/yolda/internal/outbox"
)

// The batched writes of consumers: many messages' effects in one
// transaction, so that they share one fsync behind the single writer.

// updateRequestSQL sets every column but id, in requestArgs order.
var updateRequestSQL = func() string {
	cols := strings.Split(requestColumns, ",")
	sets := make([]string, 0, len(cols)-1)
	for _, c := range cols[1:] {
		sets = append(sets, strings.TrimSpace(c)+" = ?")
	}
	return `UPDATE requests SET ` + strings.Join(sets, ", ") + ` WHERE id = ?`
}()

const receiptExistsSQL = `SELECT EXISTS (SELECT 1 FROM processed_messages WHERE consumer = ? AND message_id = ?)`

// UpdateRequests implements intake.Store. The single writer serialises
// batches, so each update reads the row as the transaction has it, its
// predecessors in the batch included.
func (s *Store) UpdateRequests(ctx context.Context, batch []*intake.Update) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, u := range batch {
			u.Result, u.Err = intake.Request{}, nil
			if err := s.applyUpdate(ctx, tx, u); err != nil {
				return err
			}
		}
		return nil
	})
}

// applyUpdate applies one update of a batch. It returns only database
// errors; the update's own outcome goes to u.Err.
func (s *Store) applyUpdate(ctx context.Context, tx *sql.Tx, u *intake.Update) error {
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
	r, err := scanRequest(tx.QueryRowContext(ctx, `SELECT `+requestColumns+` FROM requests WHERE id = ?`, u.RequestID))
	if errors.Is(err, sql.ErrNoRows) {
		u.Err = intake.ErrNotFound
		return nil
	}
	if err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	if err := s.loadTimelines(ctx, tx, []*intake.Request{&r}); err != nil {
		return err
	}
	change, err := u.Apply(&r)
	if err == nil && change.Receipt != nil {
		err = fmt.Errorf("update of %s: its receipt belongs in Update.Receipt", u.RequestID)
	}
	if err != nil {
		u.Err = err
		return nil
	}
	if rc := u.Receipt; rc != nil {
		if err := recordReceipt(ctx, tx, *rc, r.UpdatedAt); err != nil {
			// Read as absent a moment ago, under the single writer.
			return err
		}
	}
	r.Version++
	args := requestArgs(&r)
	if _, err := tx.ExecContext(ctx, updateRequestSQL, append(args[1:], r.ID)...); err != nil {
		return fmt.Errorf("update request %s: %w", r.ID, err)
	}
	if e := change.Timeline; e != nil {
		if err := insertTimeline(ctx, tx, r.ID, len(r.Timeline)+1, *e); err != nil {
			return err
		}
		r.Timeline = append(r.Timeline, *e)
	}
	if err := insertOutbox(ctx, tx, change.Outbox); err != nil {
		return err
	}
	u.Result = r
	return nil
}

// RecordNotificationBatch implements notify.Store.
func (s *Store) RecordNotificationBatch(ctx context.Context, rs []notify.Record) ([]bool, error) {
	stored := make([]bool, len(rs))
	err := s.tx(ctx, func(tx *sql.Tx) error {
		insertNote, err := tx.PrepareContext(ctx, `INSERT INTO notifications (id, request_id, recipient_id, channel, template, body, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return fmt.Errorf("prepare insert notification: %w", err)
		}
		defer insertNote.Close()
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
				if _, err := insertNote.ExecContext(ctx, n.ID, n.RequestID, n.RecipientID, n.Channel, n.Template, n.Body, toMicros(n.CreatedAt)); err != nil {
					return fmt.Errorf("insert notification: %w", err)
				}
			}
			stored[i] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return stored, nil
}
