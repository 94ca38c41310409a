package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
)

// This file is reading requests and changing them. Creation is in
// create.go; the row mapping in request_rows.go.

// selectWithTimeline reads requests with their timelines in one statement,
// so a request and its timeline come from one snapshot.
var selectWithTimeline = selectWithTimelineAnd("")

// selectWithTimelineAnd is selectWithTimeline with more columns of r after
// the timeline's (", r.a, r.b").
func selectWithTimelineAnd(more string) string {
	return `SELECT ` + selectRequestColumns + `, t.status, t.at, t.actor_id, t.reason, t.version` + more + `
	FROM requests r
	LEFT JOIN LATERAL (
		SELECT ` + timelineAggregates + `
		FROM request_timeline WHERE request_id = r.id
	) t(status, at, actor_id, reason, version) ON true`
}

// Request implements intake.Store.
func (s *Store) Request(ctx context.Context, id string) (intake.Request, error) {
	var tl timelineArrays
	r, err := scanRequest(s.pool.QueryRow(ctx, selectWithTimeline+` WHERE r.id = $1`, id), tl.dest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return intake.Request{}, intake.ErrNotFound
	}
	if err != nil {
		return intake.Request{}, fmt.Errorf("read request: %w", err)
	}
	if err := tl.fill(&r); err != nil {
		return intake.Request{}, err
	}
	return r, nil
}

// Requests implements intake.Store.
func (s *Store) Requests(ctx context.Context, f intake.Filter) ([]intake.Request, error) {
	var where []string
	var args []any
	add := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.ID != "" {
		add("r.id = ?", f.ID)
	}
	if f.OwnerID != "" {
		add("r.owner_id = ?", f.OwnerID)
	}
	if f.DriverID != "" {
		add("r.driver_id = ?", f.DriverID)
	}
	if len(f.Statuses) > 0 {
		st := make([]string, len(f.Statuses))
		for i, v := range f.Statuses {
			st[i] = string(v)
		}
		add("r.status = ANY(?::text[])", st)
	}
	if f.Province != "" {
		add("r.province = ?", f.Province)
	}
	if f.Insurer != "" {
		add("r.insurer = ?", f.Insurer)
	}
	if f.ServiceType != "" {
		add("r.service_type = ?", string(f.ServiceType))
	}
	if !f.From.IsZero() {
		add("r.created_at >= ?", f.From)
	}
	if !f.To.IsZero() {
		add("r.created_at < ?", f.To)
	}
	if f.Before != "" {
		add("r.id < ?", f.Before)
	}
	q := selectWithTimeline
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	args = append(args, f.Limit)
	q += ` ORDER BY r.id DESC LIMIT $` + strconv.Itoa(len(args))

	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	defer rows.Close()
	var out []intake.Request
	for rows.Next() {
		var tl timelineArrays
		r, err := scanRequest(rows, tl.dest()...)
		if err != nil {
			return nil, fmt.Errorf("scan request: %w", err)
		}
		if err := tl.fill(&r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	return out, nil
}

// lockRequests is the one way a transaction takes requests it will
// change: the reads (for beginRead) that lock the requests ids FOR UPDATE,
// in id order so that transactions locking several requests cannot
// deadlock, and load each, with its timeline, into *out (in id order;
// ids that do not exist are missing from it).
//
// The timeline is read by a second statement: its snapshot is taken once
// the locks are held, so it includes the entry of whoever held a lock
// before. One statement would see the locked rows' latest version (FOR
// UPDATE re-reads a row changed while it waited) but the timeline as it
// was when the statement started.
func lockRequests(ids []string, out *[]intake.Request) []read {
	var byID map[string]int
	return []read{
		{
			sql:  `SELECT ` + selectRequestColumns + ` FROM requests r WHERE r.id = ANY($1) ORDER BY r.id FOR UPDATE`,
			args: []any{ids},
			scan: func(row pgx.CollectableRow) error {
				r, err := scanRequest(row)
				if err != nil {
					return fmt.Errorf("scan request: %w", err)
				}
				*out = append(*out, r)
				return nil
			},
		},
		{
			sql: `SELECT request_id, ` + timelineAggregates + ` FROM request_timeline
				WHERE request_id = ANY($1) GROUP BY request_id`,
			args: []any{ids},
			scan: func(row pgx.CollectableRow) error {
				if byID == nil {
					byID = make(map[string]int, len(*out))
					for i, r := range *out {
						byID[r.ID] = i
					}
				}
				var id string
				var tl timelineArrays
				if err := row.Scan(append([]any{&id}, tl.dest()...)...); err != nil {
					return fmt.Errorf("scan timeline: %w", err)
				}
				i, ok := byID[id]
				if !ok {
					return nil // not locked: deleted meanwhile
				}
				return tl.fill(&(*out)[i])
			},
		},
	}
}

// updateRequestsSQL writes the new state of requests, given as
// requestArrays.requestArgs, every column but id, and resets the sweeper's
// bookkeeping of the request. A row is written only
// over the version before the new state's (Request.Advance): its rows
// affected tell how many were.
var updateRequestsSQL = func() string {
	sets := make([]string, 0, len(requestColumns)-1)
	for _, c := range requestColumns[1:] {
		v := "u." + c
		if c == "insurance_coverage" {
			v += "::json"
		}
		sets = append(sets, c+" = "+v)
	}
	// A change ends the request's wait: the sweeper's schedule, count and
	// stuck flag start again.
	sets = append(sets, "next_nudge_at = NULL", "nudges = 0", "stuck_at = NULL")
	return `UPDATE requests AS t SET ` + strings.Join(sets, ", ") + `
	FROM unnest(` + requestParams(1) + `) AS u(` + strings.Join(requestColumns, ", ") + `)
	WHERE t.id = u.id AND t.version = u.version - 1`
}()

// insertTimelineSQL appends timeline entries given as
// requestArrays.timelineArgs.
const insertTimelineSQL = `INSERT INTO request_timeline (request_id, seq, status, at, actor_id, reason, version)
	SELECT * FROM unnest($1::text[], $2::int4[], $3::text[], $4::timestamptz[], $5::text[], $6::text[], $7::int4[])`

// requestChange is one request's new state and what goes with it.
type requestChange struct {
	// Request is the new state. Its Timeline does not yet hold Entry.
	Request *intake.Request
	Entry   *intake.TimelineEntry
	Outbox  []outbox.Message
}

// queueRequestChanges queues on b the writes of changes: one statement for
// every row, one for every timeline entry and one for every outbox row,
// however many requests changed. It appends each Entry to its request's
// Timeline. The first statement queued is the update of the rows: unless
// its rows affected is len(changes), some version did not advance by one
// and the transaction must be rolled back (ErrVersion). Once the
// transaction commits, call s.outboxCommitted if any change had outbox
// rows.
func queueRequestChanges(b *pgx.Batch, changes []requestChange) {
	var a requestArrays
	var msgs []outbox.Message
	for _, c := range changes {
		a.addRequest(c.Request)
		if c.Entry != nil {
			c.Entry.Version = c.Request.Version
			a.addTimeline(c.Request.ID, len(c.Request.Timeline)+1, c.Request.Version, *c.Entry)
			c.Request.Timeline = append(c.Request.Timeline, *c.Entry)
		}
		msgs = append(msgs, c.Outbox...)
	}
	b.Queue(updateRequestsSQL, a.requestArgs()...)
	if len(a.tlRequest) > 0 {
		b.Queue(insertTimelineSQL, a.timelineArgs()...)
	}
	queueOutbox(b, msgs)
}

// UpdateRequest implements intake.Store. The lock (lockRequests)
// serialises writers of one request, so fn runs once, on the latest
// committed state. Three round trips: begin, lock and read (one pipeline);
// the writes (one pipeline: the change's receipt, the row, its timeline
// entry and its outbox rows); commit. A receipt recorded before rolls the
// whole change back and returns outbox.ErrAlreadyProcessed.
func (s *Store) UpdateRequest(ctx context.Context, id string, fn func(*intake.Request) (intake.Change, error)) (intake.Request, error) {
	var locked []intake.Request
	tx, err := s.beginRead(ctx, lockRequests([]string{id}, &locked)...)
	if err != nil {
		return intake.Request{}, fmt.Errorf("lock request: %w", err)
	}
	defer rollback(ctx, tx)
	if len(locked) == 0 {
		return intake.Request{}, intake.ErrNotFound
	}
	r := locked[0]

	before := r.Version
	change, err := fn(&r)
	if err != nil {
		return intake.Request{}, err
	}
	if r.Version != before+1 {
		return intake.Request{}, fmt.Errorf("update request %s: version %d after %d: %w", id, r.Version, before, intake.ErrVersion)
	}

	w := &pgx.Batch{}
	if rc := change.Receipt; rc != nil {
		w.Queue(insertReceiptSQL, rc.Consumer, rc.MessageID)
	}
	queueRequestChanges(w, []requestChange{{Request: &r, Entry: change.Timeline, Outbox: change.Outbox}})
	wr := tx.SendBatch(ctx, w)
	fail := func(err error) (intake.Request, error) {
		// The rest of the batch may have run; the deferred rollback
		// undoes it.
		wr.Close()
		return intake.Request{}, err
	}
	if change.Receipt != nil {
		tag, err := wr.Exec()
		if err != nil {
			return fail(fmt.Errorf("record receipt: %w", err))
		}
		if tag.RowsAffected() == 0 {
			return fail(outbox.ErrAlreadyProcessed)
		}
	}
	tag, err := wr.Exec()
	if err != nil {
		return fail(fmt.Errorf("update request %s: %w", r.ID, err))
	}
	if tag.RowsAffected() != 1 {
		// Unreachable while the row is locked; refuse rather than
		// overwrite a version this change was not made on.
		return fail(fmt.Errorf("update request %s: stored version is not %d: %w", r.ID, before, intake.ErrVersion))
	}
	if err := wr.Close(); err != nil {
		return intake.Request{}, fmt.Errorf("update request %s: %w", r.ID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return intake.Request{}, fmt.Errorf("commit: %w", err)
	}
	if len(change.Outbox) > 0 {
		s.outboxCommitted()
	}
	return r, nil
}
