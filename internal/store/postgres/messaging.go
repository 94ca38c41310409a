package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/yolda/yolda/internal/deadletter"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/notify"
	"github.com/yolda/yolda/internal/outbox"
	"github.com/yolda/yolda/internal/sweeper"
)

// insertReceiptSQL records a processed-message receipt; zero rows affected
// means it was recorded before (outbox.ErrAlreadyProcessed). A receipt
// being recorded by a transaction still in flight is waited for.
const insertReceiptSQL = `INSERT INTO processed_messages (consumer, message_id, processed_at)
	VALUES ($1, $2, now()) ON CONFLICT DO NOTHING`

// AddDeadLetter implements deadletter.Store.
func (s *Store) AddDeadLetter(ctx context.Context, l deadletter.Letter) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO dead_letters
		(id, consumer, stream, subject, message_id, payload, error, deliveries, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (consumer, message_id) DO NOTHING`,
		l.ID, l.Consumer, l.Stream, l.Subject, l.MessageID, nonNil(l.Payload), l.Error, int32(l.Deliveries), l.CreatedAt)
	if err != nil {
		return fmt.Errorf("insert dead letter: %w", err)
	}
	return nil
}

const deadLetterColumns = `id, consumer, stream, subject, message_id, payload, error, deliveries, created_at, redriven_at`

func scanDeadLetter(row rowScanner) (deadletter.Letter, error) {
	var l deadletter.Letter
	var deliveries int32
	if err := row.Scan(&l.ID, &l.Consumer, &l.Stream, &l.Subject, &l.MessageID, &l.Payload, &l.Error,
		&deliveries, &l.CreatedAt, &l.RedrivenAt); err != nil {
		return l, err
	}
	l.Deliveries = int(deliveries)
	l.CreatedAt = utc(l.CreatedAt)
	l.RedrivenAt = utcPtr(l.RedrivenAt)
	return l, nil
}

// DeadLetters implements deadletter.Store.
func (s *Store) DeadLetters(ctx context.Context, before string, limit int) ([]deadletter.Letter, error) {
	q := `SELECT ` + deadLetterColumns + ` FROM dead_letters`
	args := []any{limit}
	if before != "" {
		q += ` WHERE id < $2`
		args = append(args, before)
	}
	rows, err := s.pool.Query(ctx, q+` ORDER BY id DESC LIMIT $1`, args...)
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
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	return out, nil
}

// RedriveDeadLetter implements deadletter.Store: the letter is locked,
// marked and its message committed to the outbox in one transaction.
func (s *Store) RedriveDeadLetter(ctx context.Context, id string, at time.Time, msg func(deadletter.Letter) outbox.Message) (deadletter.Letter, error) {
	var found []deadletter.Letter
	tx, err := s.beginRead(ctx, read{
		sql:  `SELECT ` + deadLetterColumns + ` FROM dead_letters WHERE id = $1 FOR UPDATE`,
		args: []any{id},
		scan: func(row pgx.CollectableRow) error {
			l, err := scanDeadLetter(row)
			found = append(found, l)
			return err
		},
	})
	if err != nil {
		return deadletter.Letter{}, fmt.Errorf("read dead letter: %w", err)
	}
	defer rollback(ctx, tx)
	if len(found) == 0 {
		return deadletter.Letter{}, deadletter.ErrNotFound
	}
	l := found[0]
	w := &pgx.Batch{}
	w.Queue(`UPDATE dead_letters SET redriven_at = $2 WHERE id = $1`, id, at)
	queueOutbox(w, []outbox.Message{msg(l)})
	if err := tx.SendBatch(ctx, w).Close(); err != nil {
		return deadletter.Letter{}, fmt.Errorf("redrive dead letter %s: %w", id, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return deadletter.Letter{}, fmt.Errorf("commit: %w", err)
	}
	s.outboxCommitted()
	at = at.UTC()
	l.RedrivenAt = &at
	return l, nil
}

// Notifications implements notify.Store.
func (s *Store) Notifications(ctx context.Context, requestID string) ([]notify.Notification, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, request_id, recipient_id, channel, template, body, created_at
		FROM notifications WHERE request_id = $1 ORDER BY id`, requestID)
	if err != nil {
		return nil, fmt.Errorf("list notifications: %w", err)
	}
	defer rows.Close()
	var out []notify.Notification
	for rows.Next() {
		var n notify.Notification
		if err := rows.Scan(&n.ID, &n.RequestID, &n.RecipientID, &n.Channel, &n.Template, &n.Body, &n.CreatedAt); err != nil {
			return nil, fmt.Errorf("scan notification: %w", err)
		}
		n.CreatedAt = utc(n.CreatedAt)
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list notifications: %w", err)
	}
	return out, nil
}

// DueRequests implements sweeper.Store. The requests are not locked: the
// sweeper asks the broker about their jobs before it decides, and
// RecordNudges applies a decision only to a request still as read. A
// request with an open offer not yet past its deadline is not due: its job
// was done, and the offer's end (the expirer's, at the latest) commits the
// next one.
func (s *Store) DueRequests(ctx context.Context, status intake.Status, olderThan, now time.Time, limit int) ([]sweeper.Due, error) {
	rows, err := s.pool.Query(ctx, selectWithTimelineAnd(", r.nudges, r.next_nudge_at, r.stuck_at")+`
		WHERE r.status = $1
		AND CASE WHEN r.next_nudge_at IS NULL THEN r.updated_at < $2 ELSE r.next_nudge_at <= $3 END
		AND GREATEST(r.updated_at, r.nudged_at) < coalesce((SELECT min(created_at) FROM outbox), 'infinity')
		AND NOT EXISTS (SELECT 1 FROM offers o WHERE o.request_id = r.id AND o.status = 'open' AND o.expires_at > $3)
		ORDER BY coalesce(r.next_nudge_at, r.updated_at) LIMIT $4`,
		string(status), olderThan, now, limit)
	if err != nil {
		return nil, fmt.Errorf("find due requests: %w", err)
	}
	defer rows.Close()
	var out []sweeper.Due
	for rows.Next() {
		var d sweeper.Due
		var tl timelineArrays
		var nudges int32
		var stuck *time.Time
		r, err := scanRequest(rows, append(tl.dest(), &nudges, &d.Next, &stuck)...)
		if err != nil {
			return nil, fmt.Errorf("scan due request: %w", err)
		}
		if err := tl.fill(&r); err != nil {
			return nil, err
		}
		d.Request, d.Nudges, d.Stuck = r, int(nudges), stuck != nil
		d.Next = utcPtr(d.Next)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find due requests: %w", err)
	}
	return out, nil
}

// recordNudgesSQL applies the sweeper's decisions ($1-$7, one element per
// request) at $8 to the requests still as read, and inserts the jobs
// ($9-$13, with the request each is for) of those applied. It returns the
// ids applied.
const recordNudgesSQL = `WITH d AS (
	SELECT * FROM unnest($1::text[], $2::int4[], $3::int4[], $4::timestamptz[], $5::timestamptz[], $6::bool[], $7::bool[])
		AS d(id, version, nudges, read_next, next, recommit, stuck)
), upd AS (
	UPDATE requests r SET
		next_nudge_at = d.next,
		nudges = r.nudges + CASE WHEN d.recommit THEN 1 ELSE 0 END,
		nudged_at = CASE WHEN d.recommit THEN $8 ELSE r.nudged_at END,
		stuck_at = CASE WHEN d.stuck THEN coalesce(r.stuck_at, $8) ELSE r.stuck_at END
	FROM d
	WHERE r.id = d.id AND r.version = d.version AND r.nudges = d.nudges AND r.next_nudge_at IS NOT DISTINCT FROM d.read_next
	RETURNING r.id
), ins AS (
	INSERT INTO outbox (id, subject, payload, created_at)
	SELECT o.id, o.subject, o.payload, o.created_at
	FROM unnest($9::text[], $10::text[], $11::text[], $12::bytea[], $13::timestamptz[]) WITH ORDINALITY AS o(request_id, id, subject, payload, created_at, ord)
	WHERE o.request_id IN (SELECT id FROM upd)
	ORDER BY o.ord
)
SELECT id FROM upd`

// RecordNudges implements sweeper.Store, in one statement.
func (s *Store) RecordNudges(ctx context.Context, now time.Time, ds []sweeper.Decision) ([]string, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	var ids []string
	var versions, nudges []int32
	var readNext []*time.Time
	var next []time.Time
	var recommit, stuck []bool
	var a requestArrays
	for _, d := range ds {
		ids, versions, nudges = append(ids, d.RequestID), append(versions, int32(d.Version)), append(nudges, int32(d.Nudges))
		readNext, next = append(readNext, d.ReadNext), append(next, d.Next)
		recommit, stuck = append(recommit, len(d.Jobs) > 0), append(stuck, d.Stuck)
		a.addOutbox(d.RequestID, d.Jobs)
	}
	rows, err := s.pool.Query(ctx, recordNudgesSQL, ids, versions, nudges, readNext, next, recommit, stuck, now,
		a.obRequest, a.obID, a.obSubject, a.obPayload, a.obAt)
	if err != nil {
		return nil, fmt.Errorf("record nudges: %w", err)
	}
	applied, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("record nudges: %w", err)
	}
	if len(a.obID) > 0 && len(applied) > 0 {
		s.outboxCommitted()
	}
	return applied, nil
}

// StuckRequests implements sweeper.Store.
func (s *Store) StuckRequests(ctx context.Context) (map[intake.Status]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT status, count(*) FROM requests WHERE stuck_at IS NOT NULL GROUP BY status`)
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
	rows, err := s.pool.Query(ctx, `SELECT insurer, COUNT(*), MIN(created_at) FROM requests
		WHERE insurance_status = 'pending' AND status NOT IN ('completed', 'cancelled', 'rejected')
		GROUP BY insurer ORDER BY insurer`)
	if err != nil {
		return nil, fmt.Errorf("pending insurance: %w", err)
	}
	defer rows.Close()
	var out []intake.PendingChecks
	for rows.Next() {
		var p intake.PendingChecks
		if err := rows.Scan(&p.Insurer, &p.Count, &p.Oldest); err != nil {
			return nil, fmt.Errorf("scan pending insurance: %w", err)
		}
		p.Oldest = p.Oldest.UTC()
		out = append(out, p)
	}
	return out, rows.Err()
}

// PruneBookkeeping deletes up to limit receipts recorded before
// receiptsBefore and up to limit idempotency keys created before
// keysBefore, and returns how many rows it deleted.
func (s *Store) PruneBookkeeping(ctx context.Context, receiptsBefore, keysBefore time.Time, limit int) (int, error) {
	a, err := s.pool.Exec(ctx, `DELETE FROM processed_messages WHERE ctid IN (
		SELECT ctid FROM processed_messages WHERE processed_at < $1 LIMIT $2)`, receiptsBefore, limit)
	if err != nil {
		return 0, fmt.Errorf("prune receipts: %w", err)
	}
	b, err := s.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE ctid IN (
		SELECT ctid FROM idempotency_keys WHERE created_at < $1 LIMIT $2)`, keysBefore, limit)
	if err != nil {
		return 0, fmt.Errorf("prune idempotency keys: %w", err)
	}
	return int(a.RowsAffected() + b.RowsAffected()), nil
}
