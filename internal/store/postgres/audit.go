package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/yolda/yolda/internal/audit"
	"github.com/yolda/yolda/internal/identity"
)

var _ audit.Store = (*Store)(nil)

// AppendAudit implements audit.Store.
func (s *Store) AppendAudit(ctx context.Context, events ...audit.Event) error {
	b := &pgx.Batch{}
	queueAudit(b, events)
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("insert audit events: %w", err)
	}
	return nil
}

// queueAudit adds the inserts of events to b: the one way rows enter
// audit_log, also for the account changes that record theirs in the same
// transaction.
func queueAudit(b *pgx.Batch, events []audit.Event) {
	for _, e := range events {
		details := e.Details
		if details == nil {
			details = map[string]string{}
		}
		b.Queue(`INSERT INTO audit_log (id, at, action, actor_id, actor_role, target, address, request_id, details)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, e.ID, e.At, string(e.Action), e.ActorID, string(e.ActorRole),
			e.Target, e.Address, e.RequestID, details)
	}
}

// AuditEvents implements audit.Store.
func (s *Store) AuditEvents(ctx context.Context, f audit.Filter) ([]audit.Event, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
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
		add("at >= ?", f.From)
	}
	if !f.To.IsZero() {
		add("at < ?", f.To)
	}
	if f.Before != "" {
		add("id < ?", f.Before)
	}
	q := `SELECT id, at, action, actor_id, actor_role, target, address, request_id, details FROM audit_log`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, f.Limit)
	q += " ORDER BY id DESC LIMIT $" + strconv.Itoa(len(args))
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	defer rows.Close()
	var out []audit.Event
	for rows.Next() {
		var (
			e            audit.Event
			action, role string
		)
		if err := rows.Scan(&e.ID, &e.At, &action, &e.ActorID, &role, &e.Target, &e.Address, &e.RequestID, &e.Details); err != nil {
			return nil, fmt.Errorf("read audit event: %w", err)
		}
		e.At, e.Action, e.ActorRole = utc(e.At), audit.Action(action), identity.Role(role)
		if len(e.Details) == 0 {
			e.Details = nil
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// PruneAudit implements audit.Store.
func (s *Store) PruneAudit(ctx context.Context, before time.Time, limit int) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM audit_log WHERE id IN (
		SELECT id FROM audit_log WHERE at < $1 ORDER BY at LIMIT $2)`, before, limit)
	if err != nil {
		return 0, fmt.Errorf("prune audit: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
