package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/yolda/yolda/internal/deadletter"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/notify"
	"github.com/yolda/yolda/internal/outbox"
	"github.com/yolda/yolda/internal/sweeper"
)

// recordReceipt inserts a processed-message receipt; the primary key turns
// a second processing into outbox.ErrAlreadyProcessed.
func recordReceipt(ctx context.Context, tx *txn, r outbox.Receipt, at time.Time) error {
	res, err := tx.ExecContext(ctx, `INSERT INTO processed_messages (consumer, message_id, processed_at)
		VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, r.Consumer, r.MessageID, toMicros(at))
	if err != nil {
		return fmt.Errorf("record receipt: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return outbox.ErrAlreadyProcessed
	}
	return nil
}

// AddDeadLetter implements deadletter.Store.
func (s *Store) AddDeadLetter(ctx context.Context, l deadletter.Letter) error {
	return s.tx(ctx, func(tx *txn) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO dead_letters
			(id, consumer, stream, subject, message_id, payload, error, deliveries, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (consumer, message_id) DO NOTHING`,
			l.ID, l.Consumer, l.Stream, l.Subject, l.MessageID, l.Payload, l.Error, l.Deliveries, toMicros(l.CreatedAt))
		if err != nil {
			return fmt.Errorf("insert dead letter: %w", err)
		}
		return nil
	})
}

const deadLetterColumns = `id, consumer, stream, subject, message_id, payload, error, deliveries, created_at, redriven_at`

func scanDeadLetter(row rowScanner) (deadletter.Letter, error) {
	var l deadletter.Letter
	var created int64
	var redriven sql.NullInt64
	if err := row.Scan(&l.ID, &l.Consumer, &l.Stream, &l.Subject, &l.MessageID, &l.Payload, &l.Error, &l.Deliveries, &created, &redriven); err != nil {
		return l, err
	}
	l.CreatedAt = fromMicros(created)
	if redriven.Valid {
		t := fromMicros(redriven.Int64)
		l.RedrivenAt = &t
	}
	return l, nil
}

// DeadLetters implements deadletter.Store.
func (s *Store) DeadLetters(ctx context.Context, before string, limit int) ([]deadletter.Letter, error) {
	q := `SELECT ` + deadLetterColumns + ` FROM dead_letters`
	args := []any{}
	if before != "" {
		q += ` WHERE id < ?`
		args = append(args, before)
	}
	rows, err := s.read.QueryContext(ctx, q+` ORDER BY id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	defer rows.Close()
	var out []deadletter.Letter
	for rows.Next() {
		l, err := scanDeadLetter(rows)
		if err != nil {
			return nil, fmt.Errorf("scan dead letter: %w", err)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// RedriveDeadLetter implements deadletter.Store.
func (s *Store) RedriveDeadLetter(ctx context.Context, id string, at time.Time, msg func(deadletter.Letter) outbox.Message) (deadletter.Letter, error) {
	var out deadletter.Letter
	err := s.tx(ctx, func(tx *txn) error {
		l, err := scanDeadLetter(tx.QueryRowContext(ctx, `SELECT `+deadLetterColumns+` FROM dead_letters WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return deadletter.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("read dead letter: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE dead_letters SET redriven_at = ? WHERE id = ?`, toMicros(at), id); err != nil {
			return fmt.Errorf("mark dead letter: %w", err)
		}
		if err := insertOutbox(ctx, tx, []outbox.Message{msg(l)}); err != nil {
			return err
		}
		l.RedrivenAt = &at
		out = l
		return nil
	})
	return out, err
}

// Notifications implements notify.Store.
func (s *Store) Notifications(ctx context.Context, requestID string) ([]notify.Notification, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT id, request_id, recipient_id, channel, template, body, created_at
		FROM notifications WHERE request_id = ? ORDER BY id`, requestID)
	if err != nil {
		return nil, fmt.Errorf("list notifications: %w", err)
	}
	defer rows.Close()
	var out []notify.Notification
	for rows.Next() {
		var n notify.Notification
		var at int64
		if err := rows.Scan(&n.ID, &n.RequestID, &n.RecipientID, &n.Channel, &n.Template, &n.Body, &at); err != nil {
			return nil, fmt.Errorf("scan notification: %w", err)
		}
		n.CreatedAt = fromMicros(at)
		out = append(out, n)
	}
	return out, rows.Err()
}

// DueRequests implements sweeper.Store. A request with an open offer not
// yet past its deadline is not due: the offer's end commits its next job.
func (s *Store) DueRequests(ctx context.Context, status intake.Status, olderThan, now time.Time, limit int) ([]sweeper.Due, error) {
	var out []sweeper.Due
	err := s.readSnapshot(ctx, func(tx *txn) error {
		rows, err := tx.QueryContext(ctx, `SELECT id, nudges, next_nudge_at, stuck_at FROM requests
			WHERE status = ?
			AND CASE WHEN next_nudge_at IS NULL THEN updated_at < ? ELSE next_nudge_at <= ? END
			AND MAX(updated_at, COALESCE(nudged_at, 0)) < COALESCE((SELECT MIN(created_at) FROM outbox), 9223372036854775807)
			AND NOT EXISTS (SELECT 1 FROM offers o WHERE o.request_id = requests.id AND o.status = 'open' AND o.expires_at > ?)
			ORDER BY COALESCE(next_nudge_at, updated_at) LIMIT ?`,
			string(status), toMicros(olderThan), toMicros(now), toMicros(now), limit)
		if err != nil {
			return fmt.Errorf("find due requests: %w", err)
		}
		var ids []string
		for rows.Next() {
			var d sweeper.Due
			var next, stuck sql.NullInt64
			if err := rows.Scan(&d.Request.ID, &d.Nudges, &next, &stuck); err != nil {
				rows.Close()
				return fmt.Errorf("scan due request: %w", err)
			}
			if next.Valid {
				t := fromMicros(next.Int64)
				d.Next = &t
			}
			d.Stuck = stuck.Valid
			out = append(out, d)
			ids = append(ids, d.Request.ID)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(ids) == 0 {
			return err
		}
		reqs, err := readRequests(ctx, tx, `WHERE id `+inList, jsonList(ids))
		if err != nil {
			return err
		}
		byID := make(map[string]intake.Request, len(reqs))
		for _, r := range reqs {
			byID[r.ID] = r
		}
		for i := range out {
			out[i].Request = byID[out[i].Request.ID]
		}
		return nil
	})
	return out, err
}

// RecordNudges implements sweeper.Store.
func (s *Store) RecordNudges(ctx context.Context, now time.Time, ds []sweeper.Decision) ([]string, error) {
	var applied []string
	err := s.tx(ctx, func(tx *txn) error {
		applied = applied[:0]
		for _, d := range ds {
			recommit := len(d.Jobs) > 0
			var readNext sql.NullInt64
			if d.ReadNext != nil {
				readNext = sql.NullInt64{Int64: toMicros(*d.ReadNext), Valid: true}
			}
			res, err := tx.ExecContext(ctx, `UPDATE requests SET
				next_nudge_at = ?,
				nudges = nudges + CASE WHEN ? THEN 1 ELSE 0 END,
				nudged_at = CASE WHEN ? THEN ? ELSE nudged_at END,
				stuck_at = CASE WHEN ? THEN COALESCE(stuck_at, ?) ELSE stuck_at END
				WHERE id = ? AND version = ? AND nudges = ? AND next_nudge_at IS ?`,
				toMicros(d.Next), recommit, recommit, toMicros(now), d.Stuck, toMicros(now),
				d.RequestID, d.Version, d.Nudges, readNext)
			if err != nil {
				return fmt.Errorf("record nudge: %w", err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				continue // no longer as read
			}
			if err := insertOutbox(ctx, tx, d.Jobs); err != nil {
				return err
			}
			applied = append(applied, d.RequestID)
		}
		return nil
	})
	return applied, err
}

// StuckRequests implements sweeper.Store.
func (s *Store) StuckRequests(ctx context.Context) (map[intake.Status]int, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT status, COUNT(*) FROM requests WHERE stuck_at IS NOT NULL GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("stuck requests: %w", err)
	}
	defer rows.Close()
	out := map[intake.Status]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("scan stuck requests: %w", err)
		}
		out[intake.Status(st)] = n
	}
	return out, rows.Err()
}

// PendingInsurance counts, per insurer, the checks that can still settle:
// requests whose insurance is pending and whose status is not final (see
// intake.Status.Final), with the creation time of the oldest.
func (s *Store) PendingInsurance(ctx context.Context) ([]intake.PendingChecks, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT insurer, COUNT(*), MIN(created_at) FROM requests
		WHERE insurance_status = 'pending' AND status NOT IN ('completed', 'cancelled', 'rejected')
		GROUP BY insurer ORDER BY insurer`)
	if err != nil {
		return nil, fmt.Errorf("pending insurance: %w", err)
	}
	defer rows.Close()
	var out []intake.PendingChecks
	for rows.Next() {
		var p intake.PendingChecks
		var oldest int64
		if err := rows.Scan(&p.Insurer, &p.Count, &oldest); err != nil {
			return nil, fmt.Errorf("scan pending insurance: %w", err)
		}
		p.Oldest = fromMicros(oldest)
		out = append(out, p)
	}
	return out, rows.Err()
}

// PruneBookkeeping deletes up to limit receipts recorded before
// receiptsBefore and up to limit idempotency keys created before
// keysBefore, and returns how many rows it deleted.
func (s *Store) PruneBookkeeping(ctx context.Context, receiptsBefore, keysBefore time.Time, limit int) (int, error) {
	var n int64
	err := s.tx(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM processed_messages WHERE (consumer, message_id) IN (
			SELECT consumer, message_id FROM processed_messages WHERE processed_at < ? LIMIT ?)`, toMicros(receiptsBefore), limit)
		if err != nil {
			return fmt.Errorf("prune receipts: %w", err)
		}
		a, _ := res.RowsAffected()
		res, err = tx.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE (owner_id, key) IN (
			SELECT owner_id, key FROM idempotency_keys WHERE created_at < ? LIMIT ?)`, toMicros(keysBefore), limit)
		if err != nil {
			return fmt.Errorf("prune idempotency keys: %w", err)
		}
		b, _ := res.RowsAffected()
		n = a + b
		return nil
	})
	return int(n), err
}
