package postgres

import (
	"context"
	"fmt"

	"github.com/yolda/yolda/internal/outbox"
)

// PendingOutbox returns up to limit unsent outbox messages in seq order.
// seq is taken at insert, not at commit: of two transactions in flight, the
// one that commits first may hold the higher seq. A relay that reads
// "sent_at IS NULL" (as this does) loses nothing to that; one that keeps a
// "seq > last" cursor would.
func (s *Store) PendingOutbox(ctx context.Context, limit int) ([]outbox.Message, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, subject, payload, created_at FROM outbox
		WHERE sent_at IS NULL ORDER BY seq LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var out []outbox.Message
	for rows.Next() {
		var m outbox.Message
		if err := rows.Scan(&m.ID, &m.Subject, &m.Payload, &m.CreatedAt); err != nil {
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
