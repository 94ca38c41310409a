package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/yolda/yolda/internal/outbox"
)

const outboxColumns = `seq, id, subject, payload, created_at, sent_at`

// PendingOutbox returns up to limit unsent outbox messages in seq order.
// seq is taken at insert, not at commit: of two transactions in flight, the
// one that commits first may hold the higher seq. A relay that reads
// "sent_at IS NULL" (as this does) loses nothing to that; one that keeps a
// "seq > last" cursor would.
func (s *Store) PendingOutbox(ctx context.Context, limit int) ([]outbox.Message, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+outboxColumns+` FROM outbox
		WHERE sent_at IS NULL ORDER BY seq LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	return scanOutbox(rows)
}

// scanOutbox reads rows of outboxColumns and closes them.
func scanOutbox(rows pgx.Rows) ([]outbox.Message, error) {
	defer rows.Close()
	var out []outbox.Message
	for rows.Next() {
		m, err := scanOutboxRow(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	return out, nil
}

// scanOutboxRow reads one row of outboxColumns.
func scanOutboxRow(row rowScanner) (outbox.Message, error) {
	var m outbox.Message
	var sent *time.Time
	if err := row.Scan(&m.Seq, &m.ID, &m.Subject, &m.Payload, &m.CreatedAt, &sent); err != nil {
		return m, fmt.Errorf("scan outbox: %w", err)
	}
	m.CreatedAt = utc(m.CreatedAt)
	if sent != nil {
		m.SentAt = sent.UTC()
	}
	return m, nil
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
