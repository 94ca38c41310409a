package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/yolda/yolda/internal/audit"
	"github.com/yolda/yolda/internal/identity"
)

var _ audit.Store = (*Store)(nil)

// AppendAudit implements audit.Store.
func (s *Store) AppendAudit(ctx context.Context, events ...audit.Event) error {
	return s.tx(ctx, func(tx *txn) error { return insertAudit(ctx, tx, events) })
}

// insertAudit writes events in tx: the one way rows enter audit_log, also
// for the account changes that record theirs in the same transaction.
func insertAudit(ctx context.Context, tx *txn, events []audit.Event) error {
	for _, e := range events {
		details, err := encodeDetails(e.Details)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_log (id, at, action, actor_id, actor_role, target, address, request_id, details)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, e.ID, toMicros(e.At), string(e.Action), e.ActorID, string(e.ActorRole),
			e.Target, e.Address, e.RequestID, details); err != nil {
			return fmt.Errorf("insert audit event: %w", err)
		}
	}
	return nil
}

func encodeDetails(d map[string]string) (string, error) {
	if len(d) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		return "", fmt.Errorf("encode audit details: %w", err)
	}
	return string(b), nil
}

// AuditEvents implements audit.Store.
func (s *Store) AuditEvents(ctx context.Context, f audit.Filter) ([]audit.Event, error) {
	var where []string
	var args []any
	add := func(cond string, v any) { where, args = append(where, cond), append(args, v) }
	if f.ActorID != "" {
		add("actor_id = ?", f.ActorID)
	}
	if f.Action != "" {
		add("action = ?", string(f.Action))
	}
	if f.Target != "" {
		add("target = ?", f.Target)
	}
	if !f.From.IsZero() {
		add("at >= ?", toMicros(f.From))
	}
	if !f.To.IsZero() {
		add("at < ?", toMicros(f.To))
	}
	if f.Before != "" {
		add("id < ?", f.Before)
	}
	q := `SELECT id, at, action, actor_id, actor_role, target, address, request_id, details FROM audit_log`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT ?"
	rows, err := s.read.QueryContext(ctx, q, append(args, f.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	defer rows.Close()
	var out []audit.Event
	for rows.Next() {
		var (
			e            audit.Event
			at           int64
			action, role string
			details      string
		)
		if err := rows.Scan(&e.ID, &at, &action, &e.ActorID, &role, &e.Target, &e.Address, &e.RequestID, &details); err != nil {
			return nil, fmt.Errorf("read audit event: %w", err)
		}
		e.At, e.Action, e.ActorRole = fromMicros(at), audit.Action(action), identity.Role(role)
		if details != "{}" {
			if err := json.Unmarshal([]byte(details), &e.Details); err != nil {
				return nil, fmt.Errorf("decode audit details: %w", err)
			}
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// PruneAudit implements audit.Store.
func (s *Store) PruneAudit(ctx context.Context, before time.Time, limit int) (int, error) {
	var n int64
	err := s.tx(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM audit_log WHERE id IN (
			SELECT id FROM audit_log WHERE at < ? ORDER BY at LIMIT ?)`, toMicros(before), limit)
		if err != nil {
			return fmt.Errorf("prune audit: %w", err)
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}
