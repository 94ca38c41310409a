package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/notify"
	"github.com/yolda/yolda/internal/outbox"
)

// The batched writes of consumers: many messages' effects in one
// transaction, so that they share one commit and its WAL flush, and one
// statement per table instead of one per row.

// readReceiptsSQL returns which of the batch's receipts are recorded. It
// runs after the locks are held: a receipt for a change to a request is
// only ever recorded by a transaction holding that request's lock, so
// what it does not see cannot appear before this transaction commits.
const readReceiptsSQL = `SELECT p.consumer, p.message_id FROM processed_messages p
	JOIN unnest($1::text[], $2::text[]) AS b(consumer, message_id) USING (consumer, message_id)`

// insertReceiptsSQL records receipts in key order, so that concurrent
// transactions take them in the same order.
const insertReceiptsSQL = `INSERT INTO processed_messages (consumer, message_id, processed_at)
	SELECT consumer, message_id, now() FROM unnest($1::text[], $2::text[]) AS b(consumer, message_id)
	ORDER BY 1, 2 ON CONFLICT DO NOTHING`

// UpdateRequests implements intake.Store in three round trips whatever the
// batch's size (an error a row caused wraps intake.ErrRowRejected): begin, lock the requests (lockRequests) and read them,
// their timelines and the receipts (one pipeline); the writes (one
// pipeline: the receipts, the rows, the timeline entries, the outbox
// rows, a statement each); commit. The updates' Apply functions run in
// between, in order, each on a copy of its request's state so far, so that
// one that fails leaves nothing behind.
//
// A request changed by several updates of the batch is written once per
// change, in order (a "round" per change: the first change of every
// request, then the second...), since each write is checked against the
// version before it.
func (s *Store) UpdateRequests(ctx context.Context, batch []*intake.Update) error {
	if len(batch) == 0 {
		return nil
	}
	var ids, rcConsumers, rcMessages []string
	for _, u := range batch {
		u.Result, u.Err = intake.Request{}, nil
		ids = append(ids, u.RequestID)
		if rc := u.Receipt; rc != nil {
			rcConsumers, rcMessages = append(rcConsumers, rc.Consumer), append(rcMessages, rc.MessageID)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)

	var locked []intake.Request
	seen := map[outbox.Receipt]bool{}
	reads := lockRequests(ids, &locked)
	if len(rcConsumers) > 0 {
		reads = append(reads, read{sql: readReceiptsSQL, args: []any{rcConsumers, rcMessages}, scan: func(row pgx.CollectableRow) error {
			var rc outbox.Receipt
			if err := row.Scan(&rc.Consumer, &rc.MessageID); err != nil {
				return fmt.Errorf("scan receipt: %w", err)
			}
			seen[rc] = true
			return nil
		}})
	}
	tx, err := s.beginRead(ctx, reads...)
	if err != nil {
		return fmt.Errorf("lock requests: %w", err)
	}
	defer rollback(ctx, tx)
	current := make(map[string]*intake.Request, len(locked))
	for i := range locked {
		current[locked[i].ID] = &locked[i]
	}

	w := batchWrites{results: map[*intake.Update]*intake.Request{}, rounds: map[string]int{}}
	for _, u := range batch {
		w.apply(u, current, seen)
	}
	if len(w.changes) == 0 {
		return tx.Commit(ctx) // nothing to write; release the locks
	}
	wb := &pgx.Batch{}
	wb.Queue(insertReceiptsSQL, w.rcConsumer, w.rcMessage)
	for _, round := range w.changes {
		queueRequestChanges(wb, round)
	}
	queueOutbox(wb, w.outbox)
	wr := tx.SendBatch(ctx, wb)
	fail := func(err error) error {
		wr.Close() // the deferred rollback undoes what ran
		return err
	}
	tag, err := wr.Exec()
	if err == nil && int(tag.RowsAffected()) != len(w.rcConsumer) {
		// Recorded meanwhile by a transaction that did not hold the
		// request's lock: let the caller sort it out one by one.
		err = fmt.Errorf("%d of %d receipts were recorded concurrently", len(w.rcConsumer)-int(tag.RowsAffected()), len(w.rcConsumer))
	}
	if err != nil {
		return fail(fmt.Errorf("record receipts: %w", rowError(err)))
	}
	for _, round := range w.changes {
		tag, err := wr.Exec()
		if err == nil && int(tag.RowsAffected()) != len(round) {
			err = fmt.Errorf("%d of %d rows at the version they were changed on: %w", tag.RowsAffected(), len(round), intake.ErrVersion)
		}
		if err != nil {
			return fail(fmt.Errorf("update requests: %w", rowError(err)))
		}
		if slices.ContainsFunc(round, func(c requestChange) bool { return c.Entry != nil }) {
			if _, err := wr.Exec(); err != nil {
				return fail(fmt.Errorf("insert timelines: %w", rowError(err)))
			}
		}
	}
	if err := wr.Close(); err != nil {
		return fmt.Errorf("update requests: %w", rowError(err))
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if len(w.outbox) > 0 {
		s.outboxCommitted()
	}
	for u, r := range w.results {
		u.Result = *r
	}
	return nil
}

// batchWrites collects what a batch of updates writes.
type batchWrites struct {
	// changes are the rounds: changes[i] holds the i-th change of every
	// request changed at least i+1 times.
	changes               [][]requestChange
	rounds                map[string]int // request id -> changes so far
	rcConsumer, rcMessage []string
	outbox                []outbox.Message // in batch order
	results               map[*intake.Update]*intake.Request
}

// apply runs one update on a copy of its request's current state and, if
// it succeeds, makes the result current and queues its writes.
func (w *batchWrites) apply(u *intake.Update, current map[string]*intake.Request, seen map[outbox.Receipt]bool) {
	if rc := u.Receipt; rc != nil && seen[*rc] {
		u.Err = outbox.ErrAlreadyProcessed
		return
	}
	cur, ok := current[u.RequestID]
	if !ok {
		u.Err = intake.ErrNotFound
		return
	}
	r := cur.Clone()
	before := r.Version
	change, err := u.Apply(&r)
	switch {
	case err != nil:
	case change.Receipt != nil:
		err = fmt.Errorf("update of %s: its receipt belongs in Update.Receipt", u.RequestID)
	case r.Version != before+1:
		err = fmt.Errorf("update request %s: version %d after %d: %w", u.RequestID, r.Version, before, intake.ErrVersion)
	}
	if err != nil {
		u.Err = err
		return
	}
	if rc := u.Receipt; rc != nil {
		seen[*rc] = true
		w.rcConsumer, w.rcMessage = append(w.rcConsumer, rc.Consumer), append(w.rcMessage, rc.MessageID)
	}
	// r is written as it is; queueRequestChanges appends the entry to it,
	// and the next update of the request starts from a copy with it.
	n := w.rounds[r.ID]
	w.rounds[r.ID] = n + 1
	if n == len(w.changes) {
		w.changes = append(w.changes, nil)
	}
	if e := change.Timeline; e != nil {
		// Set here as well as in queueRequestChanges: the next update of
		// the request starts from a copy that holds the entry.
		e.Version = r.Version
	}
	w.changes[n] = append(w.changes[n], requestChange{Request: &r, Entry: change.Timeline})
	w.outbox = append(w.outbox, change.Outbox...)
	w.results[u] = &r
	next := r.Clone()
	if e := change.Timeline; e != nil {
		next.Timeline = append(next.Timeline, *e)
	}
	current[r.ID] = &next
}

// RecordNotificationBatch implements notify.Store in one statement: the
// receipts are inserted in key order, skipping those recorded before (a
// receipt another transaction is inserting is waited for), with the
// notifications of the records whose receipt was inserted. Of two records
// with one receipt only the first is sent.
func (s *Store) RecordNotificationBatch(ctx context.Context, rs []notify.Record) ([]bool, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	first := make(map[outbox.Receipt]int, len(rs))
	var rcConsumer, rcMessage []string
	var nConsumer, nMessage, nID, nRequest, nRecipient, nChannel, nTemplate, nBody []string
	var nAt []time.Time
	for i, r := range rs {
		if _, dup := first[r.Receipt]; dup {
			continue
		}
		first[r.Receipt] = i
		rcConsumer, rcMessage = append(rcConsumer, r.Receipt.Consumer), append(rcMessage, r.Receipt.MessageID)
		for _, n := range r.Notifications {
			nConsumer, nMessage = append(nConsumer, r.Receipt.Consumer), append(nMessage, r.Receipt.MessageID)
			nID, nRequest, nRecipient = append(nID, n.ID), append(nRequest, n.RequestID), append(nRecipient, n.RecipientID)
			nChannel, nTemplate, nBody = append(nChannel, n.Channel), append(nTemplate, n.Template), append(nBody, n.Body)
			nAt = append(nAt, n.CreatedAt)
		}
	}
	rows, err := s.pool.Query(ctx, recordNotificationBatchSQL, rcConsumer, rcMessage,
		nConsumer, nMessage, nID, nRequest, nRecipient, nChannel, nTemplate, nBody, nAt)
	if err != nil {
		return nil, fmt.Errorf("record notifications: %w", rowError(err))
	}
	stored := make([]bool, len(rs))
	for rows.Next() {
		var rc outbox.Receipt
		if err := rows.Scan(&rc.Consumer, &rc.MessageID); err != nil {
			rows.Close()
			return nil, fmt.Errorf("record notifications: %w", err)
		}
		stored[first[rc]] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("record notifications: %w", rowError(err))
	}
	return stored, nil
}

// recordNotificationBatchSQL: $1-$2 the receipts (distinct), $3-$11 the
// notifications, each with its record's receipt.
const recordNotificationBatchSQL = `WITH rc AS (
	INSERT INTO processed_messages (consumer, message_id, processed_at)
	SELECT consumer, message_id, now() FROM unnest($1::text[], $2::text[]) AS b(consumer, message_id)
	ORDER BY 1, 2
	ON CONFLICT DO NOTHING
	RETURNING consumer, message_id
), ins AS (
	INSERT INTO notifications (id, request_id, recipient_id, channel, template, body, created_at)
	SELECT n.id, n.request_id, n.recipient_id, n.channel, n.template, n.body, n.created_at
	FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[])
		AS n(consumer, message_id, id, request_id, recipient_id, channel, template, body, created_at)
	JOIN rc USING (consumer, message_id)
)
SELECT consumer, message_id FROM rc`
