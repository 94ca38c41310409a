package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/yolda/yolda/internal/outbox"
)

// The outbox, as in the PostgreSQL store (its outbox.go says why this is
// correct with several relays and after kill -9): a row is inserted with
// its change and deleted once the broker has confirmed it; a relay claims
// rows in a short transaction with a lease (outbox_claims), publishes with
// no transaction open, then moves the confirmed rows to outbox_published,
// the republish window, with where the broker stored them. SQLite's single
// writer serialises the claims.

const insertOutboxSQL = `INSERT INTO outbox (id, subject, payload, created_at) VALUES (?, ?, ?, ?)`

func insertOutbox(ctx context.Context, tx *sql.Tx, msgs []outbox.Message) error {
	for _, m := range msgs {
		if _, err := tx.ExecContext(ctx, insertOutboxSQL, m.ID, m.Subject, m.Payload, toMicros(m.CreatedAt)); err != nil {
			return fmt.Errorf("insert outbox %s: %w", m.Subject, err)
		}
	}
	return nil
}

// RelayOutbox hands up to limit unsent rows, in seq order, to publish and
// records what publish reports of each. It returns how many rows the
// broker confirmed.
func (s *Store) RelayOutbox(ctx context.Context, limit int, lease time.Duration, publish func([]outbox.Message) []outbox.Publication) (int, error) {
	var claim int64
	var msgs []outbox.Message
	err := s.tx(ctx, func(tx *sql.Tx) error {
		now := toMicros(time.Now())
		var err error
		msgs, err = queryOutbox(ctx, tx, `SELECT seq, id, subject, payload, created_at FROM outbox
			WHERE seq NOT IN (SELECT j.value FROM outbox_claims c, json_each(c.seqs) j WHERE c.lease_until > ?)
			ORDER BY seq LIMIT ?`, now, limit)
		if err != nil || len(msgs) == 0 {
			return err
		}
		seqs := make([]int64, len(msgs))
		for i, m := range msgs {
			seqs[i] = m.Seq
		}
		js, _ := json.Marshal(seqs) // integers always encode
		return tx.QueryRowContext(ctx, `INSERT INTO outbox_claims (claimed_at, lease_until, seqs) VALUES (?, ?, ?) RETURNING id`,
			now, now+lease.Microseconds(), string(js)).Scan(&claim)
	})
	if err != nil {
		return 0, fmt.Errorf("claim outbox rows: %w", err)
	}
	if len(msgs) == 0 {
		return 0, nil
	}

	pubs := publish(msgs)
	var retry time.Duration
	confirmed := 0
	// Recorded even if ctx ended during publish, within a bounded time:
	// what the broker has confirmed should not be sent again.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	err = s.tx(wctx, func(tx *sql.Tx) error {
		now := toMicros(time.Now())
		move, err := tx.PrepareContext(wctx, `INSERT OR REPLACE INTO outbox_published
			(seq, id, subject, payload, created_at, stream, ack, published_at)
			SELECT seq, id, subject, payload, created_at, ?, ?, ? FROM outbox WHERE seq = ?`)
		if err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		defer move.Close()
		del, err := tx.PrepareContext(wctx, `DELETE FROM outbox WHERE seq = ?`)
		if err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		defer del.Close()
		for i, m := range msgs {
			var p outbox.Publication
			if i < len(pubs) {
				p = pubs[i]
			}
			if !p.Confirmed() {
				retry = max(retry, p.RetryAfter)
				continue
			}
			if _, err := move.ExecContext(wctx, p.Stream, int64(p.StreamSeq), now, m.Seq); err != nil {
				return fmt.Errorf("record publication: %w", err)
			}
			if _, err := del.ExecContext(wctx, m.Seq); err != nil {
				return fmt.Errorf("delete published row: %w", err)
			}
			confirmed++
		}
		_, err = tx.ExecContext(wctx, `UPDATE outbox_claims SET lease_until = ? WHERE id = ?`, now+retry.Microseconds(), claim)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("record publication: %w", err)
	}
	return confirmed, nil
}

// OutboxLastPublished returns, of the messages confirmed on stream since
// since, the one with the highest stream sequence (zero if none).
func (s *Store) OutboxLastPublished(ctx context.Context, stream string, since time.Time) (outbox.Published, error) {
	ps, err := s.queryPublished(ctx, `WHERE stream = ? AND published_at >= ? ORDER BY ack DESC LIMIT 1`, stream, toMicros(since))
	if err != nil || len(ps) == 0 {
		return outbox.Published{}, err
	}
	return ps[0], nil
}

// OutboxPublishedAfter returns up to limit messages confirmed on stream
// since since whose stream sequence is above afterSeq, in stream-sequence
// order.
func (s *Store) OutboxPublishedAfter(ctx context.Context, stream string, since time.Time, afterSeq uint64, limit int) ([]outbox.Published, error) {
	return s.queryPublished(ctx, `WHERE stream = ? AND published_at >= ? AND ack > ? ORDER BY ack LIMIT ?`,
		stream, toMicros(since), int64(afterSeq), limit)
}

func (s *Store) queryPublished(ctx context.Context, where string, args ...any) ([]outbox.Published, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT seq, id, subject, payload, created_at, stream, ack FROM outbox_published `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("read published outbox rows: %w", err)
	}
	defer rows.Close()
	var out []outbox.Published
	for rows.Next() {
		var p outbox.Published
		var at, ack int64
		if err := rows.Scan(&p.Seq, &p.ID, &p.Subject, &p.Payload, &at, &p.Stream, &ack); err != nil {
			return nil, fmt.Errorf("scan published outbox row: %w", err)
		}
		p.CreatedAt, p.StreamSeq = fromMicros(at), uint64(ack)
		out = append(out, p)
	}
	return out, rows.Err()
}

// PruneOutbox deletes up to limit published rows, and relay claims,
// older than the given time: the republish window's old records.
func (s *Store) PruneOutbox(ctx context.Context, before time.Time, limit int) (int, error) {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		cut, now := toMicros(before), toMicros(time.Now())
		res, err := tx.ExecContext(ctx, `DELETE FROM outbox_published WHERE seq IN (
			SELECT seq FROM outbox_published WHERE published_at < ? ORDER BY published_at LIMIT ?)`, cut, limit)
		if err != nil {
			return fmt.Errorf("prune outbox: %w", err)
		}
		n, _ = res.RowsAffected()
		_, err = tx.ExecContext(ctx, `DELETE FROM outbox_claims WHERE id IN (
			SELECT id FROM outbox_claims WHERE claimed_at < ? AND lease_until < ? ORDER BY id LIMIT ?)`, cut, now, limit)
		if err != nil {
			return fmt.Errorf("prune outbox claims: %w", err)
		}
		return nil
	})
	return int(n), err
}

// OutboxBacklog counts unsent messages and returns when the oldest was
// committed (zero time when there is none).
func (s *Store) OutboxBacklog(ctx context.Context) (int, time.Time, error) {
	var n int
	var oldest sql.NullInt64
	if err := s.read.QueryRowContext(ctx, `SELECT COUNT(*), MIN(created_at) FROM outbox`).Scan(&n, &oldest); err != nil {
		return 0, time.Time{}, fmt.Errorf("outbox backlog: %w", err)
	}
	if !oldest.Valid {
		return n, time.Time{}, nil
	}
	return n, fromMicros(oldest.Int64), nil
}

// PendingOutbox returns up to limit unsent outbox messages in commit order.
func (s *Store) PendingOutbox(ctx context.Context, limit int) ([]outbox.Message, error) {
	return queryOutbox(ctx, s.read, `SELECT seq, id, subject, payload, created_at FROM outbox ORDER BY seq LIMIT ?`, limit)
}

func queryOutbox(ctx context.Context, q querier, query string, args ...any) ([]outbox.Message, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var out []outbox.Message
	for rows.Next() {
		var m outbox.Message
		var at int64
		if err := rows.Scan(&m.Seq, &m.ID, &m.Subject, &m.Payload, &at); err != nil {
			return nil, fmt.Errorf("scan outbox: %w", err)
		}
		m.CreatedAt = fromMicros(at)
		out = append(out, m)
	}
	return out, rows.Err()
}

// EnqueueOutbox commits messages on their own (re-driven work).
func (s *Store) EnqueueOutbox(ctx context.Context, msgs []outbox.Message) error {
	return s.tx(ctx, func(tx *sql.Tx) error { return insertOutbox(ctx, tx, msgs) })
}
