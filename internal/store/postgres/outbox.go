package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/yolda/yolda/internal/outbox"
)

// The outbox (docs/operations.md, "The outbox"): a row is inserted with the
// change it announces and deleted once the broker has confirmed it. No
// row is updated and no row lock is held while the broker is asked:
//
//   - a relay claims rows in a short transaction, by inserting one
//     outbox_batches row that names them (seqs) with a lease; claims are
//     serialised by a transaction-scoped advisory lock, and a claim skips
//     the rows of every live lease, so relays in any number of processes
//     take disjoint rows;
//   - it publishes them with no transaction open;
//   - one statement then deletes the confirmed rows and copies them, with
//     where the broker stored them, into the batch row, which is the
//     republish window (kept for the outbox retention); rows the broker did
//     not confirm stay, held by the lease for their RetryAfter.
//
// A relay that dies (kill -9) or stalls after claiming leaves its rows
// held until the lease ends; then any relay claims them again and publishes
// them again, which the broker's deduplication (a window longer than the
// lease) absorbs. Nothing is lost: a row leaves the outbox only in the
// statement that records its confirmation.

const outboxColumns = `seq, id, subject, payload, created_at`

// outboxClaimLock is the first key of the advisory lock that serialises
// claims; the second is a hash of the schema, as for migrations.
const outboxClaimLock = 0x59_4f_42_58 // "YOBX"

const lockOutboxClaimsSQL = `SELECT pg_advisory_xact_lock($1, hashtext(coalesce(current_schema(), '')))`

// claimOutboxSQL takes up to $1 rows that no live lease holds, in seq
// order, and records the claim with a lease of $2 microseconds. It returns
// the claim's id with every row (no row: nothing to claim).
const claimOutboxSQL = `WITH held AS (
	SELECT unnest(seqs) AS seq FROM outbox_batches WHERE lease_until > now()
), pick AS (
	SELECT o.seq, o.id, o.subject, o.payload, o.created_at FROM outbox o
	WHERE o.seq NOT IN (SELECT seq FROM held)
	ORDER BY o.seq LIMIT $1
), claim AS (
	INSERT INTO outbox_batches (claimed_at, lease_until, seqs)
	SELECT now(), now() + $2 * interval '1 microsecond', array_agg(seq) FROM pick HAVING count(*) > 0
	RETURNING id
)
SELECT (SELECT id FROM claim), pick.* FROM pick ORDER BY pick.seq`

// finishOutboxSQL records a claim's publication: the confirmed rows ($2
// seqs, $3 streams, $4 stream sequences) leave the outbox and are copied
// into the claim's row, ordered by stream sequence, with the highest
// sequence per stream; the lease is released, or extended by $5
// microseconds when some rows were not confirmed. A claim with nothing
// confirmed only moves its lease.
const finishOutboxSQL = `WITH a AS (
	SELECT c.seq, c.stream, c.ack, o.id, o.subject, o.payload, o.created_at
	FROM unnest($2::int8[], $3::text[], $4::int8[]) AS c(seq, stream, ack)
	JOIN outbox o ON o.seq = c.seq
), m AS (
	SELECT array_agg(id ORDER BY ack) AS ids, array_agg(subject ORDER BY ack) AS subjects,
		array_agg(payload ORDER BY ack) AS payloads, array_agg(created_at ORDER BY ack) AS created_ats,
		array_agg(stream ORDER BY ack) AS streams, array_agg(ack ORDER BY ack) AS acks
	FROM a
), x AS (
	SELECT array_agg(stream) AS streams, array_agg(top) AS acks
	FROM (SELECT stream, max(ack) AS top FROM a GROUP BY stream) g
), upd AS (
	UPDATE outbox_batches b SET
		published_at = CASE WHEN m.ids IS NULL THEN NULL ELSE now() END,
		lease_until = now() + $5 * interval '1 microsecond',
		ids = m.ids, subjects = m.subjects, payloads = m.payloads, created_ats = m.created_ats,
		streams = m.streams, acks = m.acks, max_streams = x.streams, max_acks = x.acks
	FROM m, x WHERE b.id = $1
)
DELETE FROM outbox WHERE seq IN (SELECT seq FROM a)`

// RelayOutbox hands up to limit unsent rows, in seq order, to publish and
// records what publish reports of each (see the top of this file). It
// returns how many rows the broker confirmed. The record is written even
// if ctx ended during publish, within a bounded time: what the broker has
// confirmed should not be sent again.
func (s *Store) RelayOutbox(ctx context.Context, limit int, lease time.Duration, publish func([]outbox.Message) []outbox.Publication) (int, error) {
	b := &pgx.Batch{}
	b.Queue(lockOutboxClaimsSQL, int32(outboxClaimLock))
	b.Queue(claimOutboxSQL, limit, lease.Microseconds())
	br := s.pool.SendBatch(ctx, b) // one implicit transaction: the lock ends with it
	var claim int64
	var msgs []outbox.Message
	_, err := br.Exec()
	if err == nil {
		var rows pgx.Rows
		if rows, err = br.Query(); err == nil {
			for rows.Next() {
				var m outbox.Message
				if err = rows.Scan(&claim, &m.Seq, &m.ID, &m.Subject, &m.Payload, &m.CreatedAt); err != nil {
					break
				}
				m.CreatedAt = utc(m.CreatedAt)
				msgs = append(msgs, m)
			}
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("claim outbox rows: %w", err)
	}
	if len(msgs) == 0 {
		return 0, nil
	}

	pubs := publish(msgs)
	var seqs, acks []int64
	var streams []string
	var retry time.Duration
	for i, m := range msgs {
		var p outbox.Publication
		if i < len(pubs) {
			p = pubs[i]
		}
		if !p.Confirmed() {
			retry = max(retry, p.RetryAfter)
			continue
		}
		seqs, streams, acks = append(seqs, m.Seq), append(streams, p.Stream), append(acks, int64(p.StreamSeq))
	}
	wctx, cancel := cleanupContext(ctx)
	defer cancel()
	if _, err := s.pool.Exec(wctx, finishOutboxSQL, claim, seqs, streams, acks, retry.Microseconds()); err != nil {
		return 0, fmt.Errorf("record publication: %w", err)
	}
	return len(seqs), nil
}

// publishedColumns unnest a batch row into its messages.
const publishedFrom = `outbox_batches b,
	unnest(b.ids, b.subjects, b.payloads, b.created_ats, b.streams, b.acks) AS m(id, subject, payload, created_at, stream, ack)`

// OutboxLastPublished returns, of the messages confirmed on stream by
// relay rounds claimed since since, the one with the highest stream
// sequence (zero if there is none).
func (s *Store) OutboxLastPublished(ctx context.Context, stream string, since time.Time) (outbox.Published, error) {
	msgs, err := s.queryPublished(ctx, `SELECT m.id, m.subject, m.payload, m.created_at, m.stream, m.ack FROM `+publishedFrom+`
		WHERE b.id = (SELECT b2.id FROM outbox_batches b2, unnest(b2.max_streams, b2.max_acks) AS x(stream, ack)
			WHERE b2.claimed_at >= $1 AND b2.published_at IS NOT NULL AND x.stream = $2 ORDER BY x.ack DESC LIMIT 1)
		AND m.stream = $2 ORDER BY m.ack DESC LIMIT 1`, since, stream)
	if err != nil || len(msgs) == 0 {
		return outbox.Published{}, err
	}
	return msgs[0], nil
}

// OutboxPublishedAfter returns up to limit messages confirmed on stream by
// relay rounds claimed since since, whose stream sequence is above
// afterSeq, in stream-sequence order: what to publish again when the
// broker lost what followed afterSeq.
func (s *Store) OutboxPublishedAfter(ctx context.Context, stream string, since time.Time, afterSeq uint64, limit int) ([]outbox.Published, error) {
	return s.queryPublished(ctx, `SELECT m.id, m.subject, m.payload, m.created_at, m.stream, m.ack FROM `+publishedFrom+`
		WHERE b.claimed_at >= $1 AND b.published_at IS NOT NULL AND m.stream = $2 AND m.ack > $3
		AND EXISTS (SELECT FROM unnest(b.max_streams, b.max_acks) AS x(stream, ack) WHERE x.stream = $2 AND x.ack > $3)
		ORDER BY m.ack LIMIT $4`, since, stream, int64(afterSeq), limit)
}

func (s *Store) queryPublished(ctx context.Context, q string, args ...any) ([]outbox.Published, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read published outbox rows: %w", err)
	}
	defer rows.Close()
	var out []outbox.Published
	for rows.Next() {
		var p outbox.Published
		var ack int64
		if err := rows.Scan(&p.ID, &p.Subject, &p.Payload, &p.CreatedAt, &p.Stream, &ack); err != nil {
			return nil, fmt.Errorf("scan published outbox row: %w", err)
		}
		p.CreatedAt, p.StreamSeq = utc(p.CreatedAt), uint64(ack)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read published outbox rows: %w", err)
	}
	return out, nil
}

// PruneOutbox deletes up to limit relay rounds claimed before the given
// time whose lease has ended: the republish window's old records.
func (s *Store) PruneOutbox(ctx context.Context, claimedBefore time.Time, limit int) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM outbox_batches WHERE id IN (
		SELECT id FROM outbox_batches WHERE claimed_at < $1 AND lease_until < now() ORDER BY id LIMIT $2)`, claimedBefore, limit)
	if err != nil {
		return 0, fmt.Errorf("prune outbox: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// OutboxBacklog counts unsent messages and returns when the oldest was
// committed (zero time when there is none).
func (s *Store) OutboxBacklog(ctx context.Context) (int, time.Time, error) {
	var n int
	var oldest *time.Time
	if err := s.pool.QueryRow(ctx, `SELECT count(*), min(created_at) FROM outbox`).Scan(&n, &oldest); err != nil {
		return 0, time.Time{}, fmt.Errorf("outbox backlog: %w", err)
	}
	if oldest == nil {
		return n, time.Time{}, nil
	}
	return n, oldest.UTC(), nil
}

// PendingOutbox returns up to limit unsent outbox messages in seq order.
// seq is taken at insert, not at commit: of two transactions in flight, the
// one that commits first may hold the higher seq. A relay that claims
// whatever is in the outbox (as RelayOutbox does) loses nothing to that;
// one that keeps a "seq > last" cursor would.
func (s *Store) PendingOutbox(ctx context.Context, limit int) ([]outbox.Message, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+outboxColumns+` FROM outbox ORDER BY seq LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var out []outbox.Message
	for rows.Next() {
		var m outbox.Message
		if err := rows.Scan(&m.Seq, &m.ID, &m.Subject, &m.Payload, &m.CreatedAt); err != nil {
			return nil, fmt.Errorf("scan outbox: %w", err)
		}
		m.CreatedAt = utc(m.CreatedAt)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	return out, nil
}

// EnqueueOutbox commits messages on their own (re-driven work), in one
// implicit transaction, one round trip.
func (s *Store) EnqueueOutbox(ctx context.Context, msgs []outbox.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	queueOutbox(b, msgs)
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("enqueue outbox: %w", err)
	}
	s.outboxCommitted()
	return nil
}

// queueOutbox queues, on b, the insertion of msgs (nothing if there are
// none). Once the transaction has committed, call s.outboxCommitted.
func queueOutbox(b *pgx.Batch, msgs []outbox.Message) {
	if len(msgs) == 0 {
		return
	}
	var a requestArrays
	a.addOutbox("", msgs)
	b.Queue(insertOutboxSQL, a.obID, a.obSubject, a.obPayload, a.obAt)
}

// insertOutboxSQL inserts outbox rows given as arrays, in array order (so
// that seq follows it).
const insertOutboxSQL = `INSERT INTO outbox (id, subject, payload, created_at)
	SELECT o.id, o.subject, o.payload, o.created_at
	FROM unnest($1::text[], $2::text[], $3::bytea[], $4::timestamptz[]) WITH ORDINALITY AS o(id, subject, payload, created_at, ord)
	ORDER BY o.ord`
