package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/yolda/yolda/internal/fold"
	"github.com/yolda/yolda/internal/intake"
)

// This file is reading requests and changing them. Creation is in
// create.go; the row mapping in request_rows.go.

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// readRequests is the one way requests are read, with their timelines:
// the requests matching where (with args; the whole tail of the query
// after FROM requests: conditions, order, limit), through q. Run it in a
// transaction (readSnapshot, or the writer's) so that the requests and
// their timelines, read by two statements, come from one snapshot.
func readRequests(ctx context.Context, q querier, where string, args ...any) ([]intake.Request, error) {
	out, err := readRequestRows(ctx, q, where, args...)
	if err != nil {
		return nil, err
	}
	if err := loadTimelines(ctx, q, out); err != nil {
		return nil, err
	}
	return out, nil
}

// readRequestRows is readRequests without the timelines, for who does not
// look at them.
func readRequestRows(ctx context.Context, q querier, where string, args ...any) ([]intake.Request, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+requestColumns+` FROM requests `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("read requests: %w", err)
	}
	var out []intake.Request
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan request: %w", err)
		}
		out = append(out, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read requests: %w", err)
	}
	return out, nil
}

// readSnapshot runs fn in a read transaction on the read pool: in WAL
// mode every statement of it sees the database as of its first read.
func (s *Store) readSnapshot(ctx context.Context, fn func(*txn) error) error {
	tx, err := s.read.begin(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer tx.ended(ctx)
	defer tx.Rollback() //nolint:errcheck // read-only: nothing to keep
	return fn(tx)
}

// Request implements intake.Store.
func (s *Store) Request(ctx context.Context, id string) (intake.Request, error) {
	var found []intake.Request
	err := s.readSnapshot(ctx, func(tx *txn) error {
		var err error
		found, err = readRequests(ctx, tx, `WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return intake.Request{}, err
	}
	if len(found) == 0 {
		return intake.Request{}, intake.ErrNotFound
	}
	return found[0], nil
}

// Requests implements intake.Store.
func (s *Store) Requests(ctx context.Context, f intake.Filter) ([]intake.Request, error) {
	var where []string
	var args []any
	add := func(cond string, arg any) { where = append(where, cond); args = append(args, arg) }
	if f.ID != "" {
		add("id = ?", f.ID)
	}
	if f.OwnerID != "" {
		add("owner_id = ?", f.OwnerID)
	}
	if f.DriverID != "" {
		add("driver_id = ?", f.DriverID)
	}
	if len(f.Statuses) > 0 {
		marks := strings.TrimSuffix(strings.Repeat("?,", len(f.Statuses)), ",")
		where = append(where, "status IN ("+marks+")")
		for _, st := range f.Statuses {
			args = append(args, string(st))
		}
	}
	if f.Province != "" {
		add("province_key = ?", fold.Key(f.Province))
	}
	if f.Insurer != "" {
		add("insurer = ?", f.Insurer)
	}
	if f.ServiceType != "" {
		add("service_type = ?", string(f.ServiceType))
	}
	if !f.From.IsZero() {
		add("created_at >= ?", toMicros(f.From))
	}
	if !f.To.IsZero() {
		add("created_at < ?", toMicros(f.To))
	}
	if f.Before != "" {
		add("id < ?", f.Before)
	}
	q := ""
	if len(where) > 0 {
		q = `WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, f.Limit)
	var out []intake.Request
	err := s.readSnapshot(ctx, func(tx *txn) error {
		var err error
		out, err = readRequests(ctx, tx, q, args...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	return out, nil
}

// loadTimelines fills the timeline of every request with one query.
func loadTimelines(ctx context.Context, q querier, reqs []intake.Request) error {
	if len(reqs) == 0 {
		return nil
	}
	byID := make(map[string]*intake.Request, len(reqs))
	ids := make([]string, len(reqs))
	for i := range reqs {
		r := &reqs[i]
		byID[r.ID] = r
		r.Timeline = r.Timeline[:0]
		ids[i] = r.ID
	}
	rows, err := q.QueryContext(ctx, `SELECT request_id, status, at, actor_id, reason, version FROM request_timeline
		WHERE request_id `+inList+` ORDER BY request_id, seq`, jsonList(ids))
	if err != nil {
		return fmt.Errorf("read timelines: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var reqID, status string
		var e intake.TimelineEntry
		var at int64
		if err := rows.Scan(&reqID, &status, &at, &e.ActorID, &e.Reason, &e.Version); err != nil {
			return fmt.Errorf("scan timeline: %w", err)
		}
		e.Status, e.At = intake.Status(status), fromMicros(at)
		r := byID[reqID]
		r.Timeline = append(r.Timeline, e)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read timelines: %w", err)
	}
	return nil
}

// UpdateRequest implements intake.Store. The single writer connection and
// BEGIN IMMEDIATE serialise writers, so fn runs once, on the latest state.
func (s *Store) UpdateRequest(ctx context.Context, id string, fn func(*intake.Request) (intake.Change, error)) (intake.Request, error) {
	var out intake.Request
	err := s.tx(ctx, func(tx *txn) error {
		found, err := readRequests(ctx, tx, `WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if len(found) == 0 {
			return intake.ErrNotFound
		}
		r := found[0]
		before := r.Version
		change, err := fn(&r)
		if err != nil {
			return err
		}
		if r.Version != before+1 {
			return fmt.Errorf("update request %s: version %d after %d: %w", id, r.Version, before, intake.ErrVersion)
		}
		if change.Receipt != nil {
			if err := recordReceipt(ctx, tx, *change.Receipt, r.UpdatedAt); err != nil {
				return err
			}
		}
		if err := writeChange(ctx, tx, &r, before, change); err != nil {
			return err
		}
		out = r
		return nil
	})
	return out, err
}

// writeChange writes a change made on version before of r: the row (only
// over that version), its timeline entry (appended to r.Timeline) and its
// outbox rows. The receipt is the caller's.
func writeChange(ctx context.Context, tx *txn, r *intake.Request, before int, change intake.Change) error {
	args := requestArgs(r)
	return applyChange(ctx, tx, r, before, change, updateRequestSQL, append(args[1:], r.ID, before)...)
}

// applyChange is writeChange with the row's update given: update, with
// args, must write r's row only over version before.
func applyChange(ctx context.Context, tx *txn, r *intake.Request, before int, change intake.Change, update string, args ...any) error {
	res, err := tx.ExecContext(ctx, update, args...)
	if err != nil {
		return fmt.Errorf("update request: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("update request %s: stored version is not %d: %w", r.ID, before, intake.ErrVersion)
	}
	if e := change.Timeline; e != nil {
		e.Version = r.Version
		if err := insertTimeline(ctx, tx, r.ID, len(r.Timeline)+1, *e); err != nil {
			return err
		}
		r.Timeline = append(r.Timeline, *e)
	}
	return insertOutbox(ctx, tx, change.Outbox)
}

const insertTimelineSQL = `INSERT INTO request_timeline (request_id, seq, status, at, actor_id, reason, version) VALUES (?, ?, ?, ?, ?, ?, ?)`

func insertTimeline(ctx context.Context, tx *txn, requestID string, seq int, e intake.TimelineEntry) error {
	if _, err := tx.ExecContext(ctx, insertTimelineSQL, requestID, seq, string(e.Status), toMicros(e.At), e.ActorID, e.Reason, e.Version); err != nil {
		return fmt.Errorf("insert timeline: %w", err)
	}
	return nil
}
