package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/yolda/yolda/internal/outbox"
)

const insertOutboxSQL = `INSERT INTO outbox (id, subject, payload, created_at) VALUES (?, ?, ?, ?)`

func insertOutbox(ctx context.Context, tx *sql.Tx, msgs []outbox.Message) error {
	for _, m := range msgs {
		if _, err := tx.ExecContext(ctx, insertOutboxSQL, m.ID, m.Subject, m.Payload, toMicros(m.CreatedAt)); err != nil {
			return fmt.Errorf("insert outbox %s: %w", m.Subject, err)
		}
	}
	return nil
}
