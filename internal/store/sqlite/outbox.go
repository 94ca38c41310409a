package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/yolda/yolda/internal/outbox"
)

func insertOutbox(ctx context.Context, tx *sql.Tx, msgs []outbox.Message) error {
	for _, m := range msgs {
		if _, err := tx.ExecContext(ctx, `INSERT INTO outbox (id, subject, payload, created_at) VALUES (?, ?, ?, ?)`,
			m.ID, m.Subject, m.Payload, toMicros(m.CreatedAt)); err != nil {
			return fmt.Errorf("insert outbox %s: %w", m.Subject, err)
		}
	}
	return nil
}

// PendingOutbox returns up to limit unsent outbox messages in commit order.
// The relay (next to come) reads through it; tests use it to prove that a
// change and its messages commit together.
func (s *Store) PendingOutbox(ctx context.Context, limit int) ([]outbox.Message, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT id, subject, payload, created_at FROM outbox
		WHERE sent_at IS NULL ORDER BY seq LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var out []outbox.Message
	for rows.Next() {
		var m outbox.Message
		var at int64
		if err := rows.Scan(&m.ID, &m.Subject, &m.Payload, &at); err != nil {
			return nil, fmt.Errorf("scan outbox: %w", err)
		}
		m.CreatedAt = fromMicros(at)
		out = append(out, m)
	}
	return out, rows.Err()
}
