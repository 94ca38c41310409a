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
