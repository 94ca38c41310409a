package postgres

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/notify"
	"github.com/yolda/yolda/internal/outbox"
)

// The batched writes of consumers: many messages' effects in one
// transaction, so that they share one commit and its WAL flush, and one
// statement per table instead of one per row.

// lockRequestsSQL locks the batch's requests in id order: two batches that
// share requests lock them in the same order, so neither can hold one the
// other waits for while waiting for one the other holds.
var lockRequestsSQL = `SELECT ` + selectRequestColumns + ` FROM requests r WHERE r.id = ANY($1) ORDER BY r.id FOR UPDATE`

// readTimelinesSQL reads the locked requests' timelines. It runs after
// lockRequestsSQL, with a newer snapshot, so it sees the timeline entries
// of whoever held the locks before.
const readTimelinesSQL = `SELECT request_id, array_agg(status ORDER BY seq), array_agg(at ORDER BY seq),
	array_agg(actor_id ORDER BY seq), array_agg(reason ORDER BY seq)
	FROM request_timeline WHERE request_id = ANY($1) GROUP BY request_id`

// readReceiptsSQL returns which of the batch's receipts are recorded. It
// runs after the locks are held: a receipt for a change to a request is
// only ever recorded by a transaction holding that request's lock, so
// what it does not see cannot appear before this transaction commits.
const readReceiptsSQL = `SELECT p.consumer, p.message_id FROM processed_messages p
	JOIN unnest($1::text[], $2::text[]) AS b(consumer, message_id) USING (consumer, message_id)`

// insertReceiptsSQL records receipts in key order (see lockRequestsSQL).
const insertReceiptsSQL = `INSERT INTO processed_messages (consumer, message_id, processed_at)
	SELECT consumer, message_id, now() FROM unnest($1::text[], $2::text[]) AS b(consumer, message_id)
	ORDER BY 1, 2 ON CONFLICT DO NOTHING`

const insertTimelinesSQL = `INSERT INTO request_timeline (request_id, seq, status, at, actor_id, reason)
	SELECT * FROM unnest($1::text[], $2::int4[], $3::text[], $4::timestamptz[], $5::text[], $6::text[])`

// updateRequestsSQL writes every column but id of many requests, from
// arrays in requestColumns order.
var updateRequestsSQL = func() string {
	params := make([]string, len(requestColumns))
	for i, t := range requestTypes {
		params[i] = "$" + strconv.Itoa(i+1) + "::" + t + "[]"
	}
	sets := make([]string, 0, len(requestColumns)-1)
	for _, c := range requestColumns[1:] {
		v := "u." + c
		if c == "insurance_coverage" {
			v += "::json"
		}
		sets = append(sets, c+" = "+v)
	}
	return `UPDATE requests SET ` + strings.Join(sets, ", ") + ` FROM unnest(` + strings.Join(params, ", ") +
		`) AS u(` + strings.Join(requestColumns, ", ") + `) WHERE requests.id = u.id`
}()

// UpdateRequests implements intake.Store in three round trips whatever the
// batch's size: begin, lock and read the requests, their timelines and
// the receipts (one pipeline); the writes, one statement per table (one
// pipeline); commit. The updates' Apply functions run in between, in
// order, on copies, so that one that fails leaves nothing behind.
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

	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.Queue(lockRequestsSQL, ids)
	b.Queue(readTimelinesSQL, ids)
	if len(rcConsumers) > 0 {
		b.Queue(readReceiptsSQL, rcConsumers, rcMessages)
	}
	br := s.pool.SendBatch(ctx, b)
	tx := br.Tx()
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	current, seen, err := readLocked(br, len(rcConsumers) > 0)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("lock requests: %w", cerr)
	}
	if err != nil {
		return err
	}

	var w batchWrites
	for _, u := range batch {
		w.apply(u, current, seen)
	}
	if w.empty() {
		return tx.Commit(ctx) // nothing to write; release the locks
	}
	wb := &pgx.Batch{}
	if len(w.rcConsumer) > 0 {
		wb.Queue(insertReceiptsSQL, w.rcConsumer, w.rcMessage)
	}
	var rows requestArrays
	for _, id := range w.touched {
		rows.addRequest(current[id], nil)
	}
	wb.Queue(updateRequestsSQL, rows.args()[:len(requestColumns)]...)
	if len(w.tl.tlRequest) > 0 {
		wb.Queue(insertTimelinesSQL, w.tl.tlRequest, w.tl.tlSeq, w.tl.tlStatus, w.tl.tlAt, w.tl.tlActor, w.tl.tlReason)
	}
	queueOutbox(wb, w.outbox)
	wr := tx.SendBatch(ctx, wb)
	if len(w.rcConsumer) > 0 {
		tag, err := wr.Exec()
		if err == nil && int(tag.RowsAffected()) != len(w.rcConsumer) {
			// Recorded meanwhile by a transaction that did not hold the
			// request's lock: let the caller sort it out one by one.
			err = fmt.Errorf("%d of %d receipts were recorded concurrently", len(w.rcConsumer)-int(tag.RowsAffected()), len(w.rcConsumer))
		}
		if err != nil {
			wr.Close()
			return fmt.Errorf("record receipts: %w", err)
		}
	}
	tag, err := wr.Exec()
	if err == nil && int(tag.RowsAffected()) != len(w.touched) {
		err = fmt.Errorf("%d of %d rows updated", tag.RowsAffected(), len(w.touched))
	}
	if err != nil {
		wr.Close()
		return fmt.Errorf("update requests: %w", err)
	}
	if err := wr.Close(); err != nil {
		return fmt.Errorf("update requests: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if len(w.outbox) > 0 {
		s.outboxCommitted()
	}
	for _, u := range batch {
		if u.Err == nil {
			u.Result = *w.results[u]
		}
	}
	return nil
}

// readLocked reads what the first pipeline of UpdateRequests returns: the
// locked requests with their timelines, by id, and the receipts already
// recorded.
func readLocked(br pgx.BatchResults, receipts bool) (map[string]*intake.Request, map[outbox.Receipt]bool, error) {
	if _, err := br.Exec(); err != nil { // BEGIN
		return nil, nil, fmt.Errorf("begin: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, nil, fmt.Errorf("lock requests: %w", err)
	}
	current := map[string]*intake.Request{}
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("read request: %w", err)
		}
		current[r.ID] = &r
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("lock requests: %w", err)
	}
	if rows, err = br.Query(); err != nil {
		return nil, nil, fmt.Errorf("read timelines: %w", err)
	}
	for rows.Next() {
		var id string
		var tl timelineArrays
		if err := rows.Scan(append([]any{&id}, tl.dest()...)...); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("read timeline: %w", err)
		}
		if r, ok := current[id]; ok {
			if err := tl.fill(r); err != nil {
				rows.Close()
				return nil, nil, err
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read timelines: %w", err)
	}
	seen := map[outbox.Receipt]bool{}
	if !receipts {
		return current, seen, nil
	}
	if rows, err = br.Query(); err != nil {
		return nil, nil, fmt.Errorf("read receipts: %w", err)
	}
	for rows.Next() {
		var rc outbox.Receipt
		if err := rows.Scan(&rc.Consumer, &rc.MessageID); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("read receipt: %w", err)
		}
		seen[rc] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read receipts: %w", err)
	}
	return current, seen, nil
}

// batchWrites collects what a batch of updates writes.
type batchWrites struct {
	touched               []string // requests changed, each once, in order of first change
	rcConsumer, rcMessage []string
	tl                    requestArrays // timeline columns only
	outbox                []outbox.Message
	results               map[*intake.Update]*intake.Request
}

func (w *batchWrites) empty() bool { return len(w.touched) == 0 && len(w.rcConsumer) == 0 }

// apply runs one update on a copy of its request's current state and, if
// it succeeds, makes the copy current and queues its writes.
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
	change, err := u.Apply(&r)
	if err == nil && change.Receipt != nil {
		err = fmt.Errorf("update of %s: its receipt belongs in Update.Receipt", u.RequestID)
	}
	if err != nil {
		u.Err = err
		return
	}
	if rc := u.Receipt; rc != nil {
		seen[*rc] = true
		w.rcConsumer, w.rcMessage = append(w.rcConsumer, rc.Consumer), append(w.rcMessage, rc.MessageID)
	}
	r.Version++
	if e := change.Timeline; e != nil {
		w.tl.addTimeline(r.ID, len(r.Timeline)+1, *e)
		r.Timeline = append(r.Timeline, *e)
	}
	w.outbox = append(w.outbox, change.Outbox...)
	if !slices.Contains(w.touched, r.ID) {
		w.touched = append(w.touched, r.ID)
	}
	current[r.ID] = &r
	if w.results == nil {
		w.results = map[*intake.Update]*intake.Request{}
	}
	w.results[u] = &r
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
		return nil, fmt.Errorf("record notifications: %w", err)
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
		return nil, fmt.Errorf("record notifications: %w", err)
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
