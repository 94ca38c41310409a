package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/yolda/yolda/internal/outbox"
)

// The outbox, as in the PostgreSQL store (its outbox.go says why this is
// correct with several relays and after kill -9): a row is inserted with
// its change and deleted once the broker has confirmed it; a relay claims
// rows in a short transaction with a lease (one outbox_claims row naming
// them), publishes with no transaction open, then deletes the confirmed
// rows and writes them, with where the broker stored them, into the claim's
// row as one JSON document: the republish window. SQLite's single writer
// serialises the claims.

const insertOutboxSQL = `INSERT INTO outbox (id, subject, payload, created_at) VALUES (?, ?, ?, ?)`

func insertOutbox(ctx context.Context, tx *txn, msgs []outbox.Message) error {
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
	err := s.tx(ctx, func(tx *txn) error {
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
	var window []publishedJSON
	top := map[string]uint64{}
	for i, m := range msgs {
		var p outbox.Publication
		if i < len(pubs) {
			p = pubs[i]
		}
		if !p.Confirmed() {
			retry = max(retry, p.RetryAfter)
			continue
		}
		window = append(window, publishedJSON{Seq: m.Seq, ID: m.ID, Subject: m.Subject, Payload: m.Payload,
			CreatedAt: toMicros(m.CreatedAt), Stream: p.Stream, Ack: p.StreamSeq})
		top[p.Stream] = max(top[p.Stream], p.StreamSeq)
	}
	// Recorded even if ctx ended during publish, within a bounded time:
	// what the broker has confirmed should not be sent again.
	wctx, cancel := recordContext(ctx)
	defer cancel()
	err = s.tx(wctx, func(tx *txn) error {
		now := toMicros(time.Now())
		if len(window) == 0 {
			_, err := tx.ExecContext(wctx, `UPDATE outbox_claims SET lease_until = ? WHERE id = ?`, now+retry.Microseconds(), claim)
			return err
		}
		seqs := make([]int64, len(window))
		for i, w := range window {
			seqs[i] = w.Seq
		}
		if _, err := tx.ExecContext(wctx, `DELETE FROM outbox WHERE seq `+inList, jsonList(seqs)); err != nil {
			return fmt.Errorf("delete published rows: %w", err)
		}
		doc, _ := json.Marshal(window) // strings, bytes and integers always encode
		tops, _ := json.Marshal(top)
		_, err := tx.ExecContext(wctx, `UPDATE outbox_claims SET published_at = ?, lease_until = ?, messages = ?, max_acks = ? WHERE id = ?`,
			now, now+retry.Microseconds(), doc, string(tops), claim)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("record publication: %w", err)
	}
	return len(window), nil
}

// recordContext is the context of recording what the broker confirmed.
// It lives as long as ctx and, once ctx has ended, cleanupTimeout more: a
// record in flight at shutdown finishes, within a bound, and one queued
// behind the busy single writer while the relay runs is not given up
// after a few seconds (its rows would stay claimed for the lease and be
// published again).
func recordContext(ctx context.Context) (context.Context, context.CancelFunc) {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(cleanupTimeout, cancel) })
	return rctx, func() {
		stop()
		cancel()
	}
}

// publishedJSON is one message of a claim's published document.
type publishedJSON struct {
	Seq       int64  `json:"seq"`
	ID        string `json:"id"`
	Subject   string `json:"subject"`
	Payload   []byte `json:"payload"`
	CreatedAt int64  `json:"created_at"`
	Stream    string `json:"stream"`
	Ack       uint64 `json:"ack"`
}

// publishedOn reads the messages confirmed on stream with a sequence above
// afterSeq by the rounds claimed since since, in stream-sequence order.
// Only the rounds whose highest sequence on stream is above afterSeq are
// decoded; descending with limit 1 returns the highest message.
func (s *Store) publishedOn(ctx context.Context, stream string, since time.Time, afterSeq uint64, descending bool, limit int) ([]outbox.Published, error) {
	order := "ASC"
	if descending {
		order = "DESC"
	}
	rows, err := s.read.QueryContext(ctx, `SELECT messages FROM outbox_claims
		WHERE claimed_at >= ? AND published_at IS NOT NULL
		AND CAST(json_extract(max_acks, '$."' || ? || '"') AS INTEGER) > ?
		ORDER BY CAST(json_extract(max_acks, '$."' || ? || '"') AS INTEGER) `+order,
		toMicros(since), stream, int64(afterSeq), stream)
	if err != nil {
		return nil, fmt.Errorf("read published outbox rows: %w", err)
	}
	defer rows.Close()
	var out []outbox.Published
	for rows.Next() {
		var doc []byte
		if err := rows.Scan(&doc); err != nil {
			return nil, fmt.Errorf("scan published outbox rows: %w", err)
		}
		var ms []publishedJSON
		if err := json.Unmarshal(doc, &ms); err != nil {
			return nil, fmt.Errorf("decode published outbox rows: %w", err)
		}
		for _, m := range ms {
			if m.Stream == stream && m.Ack > afterSeq {
				out = append(out, outbox.Published{Message: outbox.Message{Seq: m.Seq, ID: m.ID, Subject: m.Subject,
					Payload: m.Payload, CreatedAt: fromMicros(m.CreatedAt)}, Stream: m.Stream, StreamSeq: m.Ack})
			}
		}
		if descending && len(out) > 0 {
			break // the round with the highest sequence holds the message
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read published outbox rows: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].StreamSeq < out[j].StreamSeq })
	if descending && len(out) > 0 {
		return out[len(out)-1:], nil
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// OutboxLastPublished returns, of the messages confirmed on stream since
// since, the one with the highest stream sequence (zero if none).
func (s *Store) OutboxLastPublished(ctx context.Context, stream string, since time.Time) (outbox.Published, error) {
	ps, err := s.publishedOn(ctx, stream, since, 0, true, 1)
	if err != nil || len(ps) == 0 {
		return outbox.Published{}, err
	}
	return ps[0], nil
}

// OutboxPublishedAfter returns up to limit messages confirmed on stream
// since since whose stream sequence is above afterSeq, in stream-sequence
// order.
func (s *Store) OutboxPublishedAfter(ctx context.Context, stream string, since time.Time, afterSeq uint64, limit int) ([]outbox.Published, error) {
	return s.publishedOn(ctx, stream, since, afterSeq, false, limit)
}

// PruneOutbox deletes up to limit relay rounds claimed before the given
// time whose lease has ended: the republish window's old records.
func (s *Store) PruneOutbox(ctx context.Context, before time.Time, limit int) (int, error) {
	var n int64
	err := s.tx(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM outbox_claims WHERE id IN (
			SELECT id FROM outbox_claims WHERE claimed_at < ? AND lease_until < ? ORDER BY id LIMIT ?)`,
			toMicros(before), toMicros(time.Now()), limit)
		if err != nil {
			return fmt.Errorf("prune outbox: %w", err)
		}
		n, _ = res.RowsAffected()
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
	return s.tx(ctx, func(tx *txn) error { return insertOutbox(ctx, tx, msgs) })
}
