package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/yolda/yolda/internal/dispatch"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
)

// The dispatch store: offers, decisions and assignments.
//
// Locks, always taken in this order so that no two transactions wait for
// each other in a circle: a request row (FOR UPDATE; intake's
// UpdateRequest takes it too), then offer rows, then driver rows. The
// release trigger of 0005_dispatch.sql runs inside a request's update and
// so keeps the order. Worker transactions lock many requests (by id) and
// many drivers (FOR SHARE, by id) and insert offers in driver order, so
// two of them meet on a driver's unique key in one order only.

var _ dispatch.Store = (*Store)(nil)

const offerColumns = `o.id, o.request_id, o.driver_id, o.round, o.eta_seconds, o.distance_m, o.status, o.created_at, o.expires_at, o.decided_at`

// offerDest receives the columns of offerColumns.
type offerDest struct {
	o                dispatch.Offer
	status           string
	round, eta, dist int32
}

func (d *offerDest) dest() []any {
	return []any{&d.o.ID, &d.o.RequestID, &d.o.DriverID, &d.round, &d.eta, &d.dist, &d.status, &d.o.CreatedAt, &d.o.ExpiresAt, &d.o.DecidedAt}
}

func (d *offerDest) offer() dispatch.Offer {
	o := d.o
	o.Round, o.ETASeconds, o.DistanceM = int(d.round), int(d.eta), int(d.dist)
	o.Status = dispatch.OfferStatus(d.status)
	o.CreatedAt, o.ExpiresAt, o.DecidedAt = utc(o.CreatedAt), utc(o.ExpiresAt), utcPtr(o.DecidedAt)
	return o
}

func scanOffer(row rowScanner) (dispatch.Offer, error) {
	var d offerDest
	if err := row.Scan(d.dest()...); err != nil {
		return dispatch.Offer{}, err
	}
	return d.offer(), nil
}

// Snapshots implements dispatch.Store: one round trip. The two reads are
// not one snapshot; CommitDecisions checks what a decision relied on.
func (s *Store) Snapshots(ctx context.Context, requestIDs []string) ([]dispatch.Snapshot, error) {
	if len(requestIDs) == 0 {
		return nil, nil
	}
	b := &pgx.Batch{}
	b.Queue(selectWithTimeline+` WHERE r.id = ANY($1)`, requestIDs)
	b.Queue(`SELECT `+offerColumns+` FROM offers o WHERE o.request_id = ANY($1) ORDER BY o.request_id, o.created_at, o.id`, requestIDs)
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("read requests: %w", err)
	}
	var out []dispatch.Snapshot
	for rows.Next() {
		var tl timelineArrays
		r, err := scanRequest(rows, tl.dest()...)
		if err == nil {
			err = tl.fill(&r)
		}
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan request: %w", err)
		}
		out = append(out, dispatch.Snapshot{Request: r})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read requests: %w", err)
	}
	byID := make(map[string]*dispatch.Snapshot, len(out))
	for i := range out {
		byID[out[i].Request.ID] = &out[i]
	}
	rows, err = br.Query()
	if err != nil {
		return nil, fmt.Errorf("read offers: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		o, err := scanOffer(rows)
		if err != nil {
			return nil, fmt.Errorf("scan offer: %w", err)
		}
		if sn := byID[o.RequestID]; sn != nil {
			sn.Offers = append(sn.Offers, o)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read offers: %w", err)
	}
	return out, nil
}

// onJobCond is true of a driver whose id is the expression ID on an open
// job: the statuses of requests_one_open_job_per_driver, whose index it
// uses. A driver's current job is derived from requests (0005_fleet.sql).
const onJobCond = `EXISTS (SELECT 1 FROM requests j WHERE j.driver_id = ID
	AND j.status IN ('assigned', 'en_route', 'arrived', 'in_service'))`

func onJob(idExpr string) string { return strings.ReplaceAll(onJobCond, "ID", idExpr) }

// FreeDrivers implements dispatch.Store.
func (s *Store) FreeDrivers(ctx context.Context, driverIDs []string) ([]string, error) {
	if len(driverIDs) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT d.user_id FROM drivers d
		WHERE d.user_id = ANY($1) AND d.availability = 'online' AND NOT `+onJob("d.user_id")+`
		  AND NOT EXISTS (SELECT 1 FROM offers o WHERE o.driver_id = d.user_id AND o.status = 'open')`, driverIDs)
	if err != nil {
		return nil, fmt.Errorf("read free drivers: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// lockDriversSQL takes the drivers of a batch of offers FOR SHARE, in id
// order (see the lock order above): an assignment of one of them (which
// locks its driver FOR UPDATE) waits for this transaction, and this one
// for an assignment in flight. insertOffersSQL, a later statement, then
// sees whatever the assignments before it committed, and inserts the
// offers whose driver is online and on no job. A driver holding an open
// offer, or a request offered to the driver before, hits a unique index:
// the row is skipped. Rows go in driver order.
const lockDriversSQL = `SELECT user_id FROM drivers WHERE user_id = ANY($1) ORDER BY user_id FOR SHARE`

var insertOffersSQL = `INSERT INTO offers (id, request_id, driver_id, round, eta_seconds, distance_m, status, created_at, expires_at)
SELECT o.id, o.request_id, o.driver_id, o.round, o.eta_seconds, o.distance_m, 'open', o.created_at, o.expires_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::int4[], $5::int4[], $6::int4[], $7::timestamptz[], $8::timestamptz[])
	AS o(id, request_id, driver_id, round, eta_seconds, distance_m, created_at, expires_at)
WHERE EXISTS (SELECT 1 FROM drivers d WHERE d.user_id = o.driver_id AND d.availability = 'online')
	AND NOT ` + onJob("o.driver_id") + `
ORDER BY o.driver_id, o.request_id
ON CONFLICT DO NOTHING
RETURNING id`

// CommitDecisions implements dispatch.Store in one transaction of four
// round trips: lock the requests and read what the decisions relied on;
// insert the offers; write the rest; commit.
func (s *Store) CommitDecisions(ctx context.Context, ds []*dispatch.Decision) error {
	if len(ds) == 0 {
		return nil
	}
	var ids, rcConsumer, rcMessage []string
	for _, d := range ds {
		d.Err = nil
		ids = append(ids, d.RequestID)
		if rc := d.Change.Receipt; rc != nil {
			rcConsumer, rcMessage = append(rcConsumer, rc.Consumer), append(rcMessage, rc.MessageID)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)

	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.Queue(`SELECT id, version FROM requests WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids)
	// Separate statements, so their snapshot is taken once the locks are
	// held: they see every offer committed by whoever held a lock before.
	b.Queue(`SELECT request_id, count(*) FROM offers WHERE request_id = ANY($1) GROUP BY request_id`, ids)
	b.Queue(`SELECT p.consumer, p.message_id FROM processed_messages p
		JOIN unnest($1::text[], $2::text[]) AS x(consumer, message_id) ON p.consumer = x.consumer AND p.message_id = x.message_id`,
		rcConsumer, rcMessage)
	br := s.pool.SendBatch(ctx, b)
	tx := br.Tx()
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	versions := make(map[string]int, len(ids))
	counts := make(map[string]int, len(ids))
	seen := map[outbox.Receipt]bool{}
	err := readAll(br,
		func(rows pgx.Rows) error {
			var id string
			var v int32
			err := forEach(rows, func() error { versions[id] = int(v); return nil }, &id, &v)
			return err
		},
		func(rows pgx.Rows) error {
			var id string
			var n int64
			return forEach(rows, func() error { counts[id] = int(n); return nil }, &id, &n)
		},
		func(rows pgx.Rows) error {
			var rc outbox.Receipt
			return forEach(rows, func() error { seen[rc] = true; return nil }, &rc.Consumer, &rc.MessageID)
		})
	if err != nil {
		return fmt.Errorf("lock requests: %w", err)
	}

	var live []*dispatch.Decision
	var oID, oReq, oDriver []string
	var oRound, oETA, oDist []int32
	var oCreated, oExpires []time.Time
	for _, d := range ds {
		v, ok := versions[d.RequestID]
		switch {
		case !ok || v != d.Version || counts[d.RequestID] != d.Offers:
			d.Err = dispatch.ErrStale
			continue
		case d.Change.Receipt != nil && seen[*d.Change.Receipt]:
			d.Err = outbox.ErrAlreadyProcessed
			continue
		}
		// Two decisions for one request (duplicate jobs) cannot both hold:
		// the first one taken changes what the second relied on.
		counts[d.RequestID] = -1
		live = append(live, d)
		if o := d.Offer; o != nil {
			oID, oReq, oDriver = append(oID, o.ID), append(oReq, o.RequestID), append(oDriver, o.DriverID)
			oRound, oETA, oDist = append(oRound, int32(o.Round)), append(oETA, int32(o.ETASeconds)), append(oDist, int32(o.DistanceM))
			oCreated, oExpires = append(oCreated, o.CreatedAt), append(oExpires, o.ExpiresAt)
		}
	}
	if len(live) == 0 {
		return nil // the deferred rollback ends the transaction
	}
	if len(oID) > 0 {
		drivers := slices.Clone(oDriver)
		slices.Sort(drivers)
		ob := &pgx.Batch{}
		ob.Queue(lockDriversSQL, slices.Compact(drivers))
		ob.Queue(insertOffersSQL, oID, oReq, oDriver, oRound, oETA, oDist, oCreated, oExpires)
		obr := tx.SendBatch(ctx, ob)
		_, err := obr.Exec()
		var inserted []string
		if err == nil {
			var rows pgx.Rows
			if rows, err = obr.Query(); err == nil {
				inserted, err = pgx.CollectRows(rows, pgx.RowTo[string])
			}
		}
		if cerr := obr.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("insert offers: %w", err)
		}
		slices.Sort(inserted)
		kept := live[:0]
		for _, d := range live {
			if d.Offer != nil {
				if _, ok := slices.BinarySearch(inserted, d.Offer.ID); !ok {
					d.Err = dispatch.ErrDriverTaken
					continue
				}
			}
			kept = append(kept, d)
		}
		live = kept
	}

	w := &pgx.Batch{}
	var msgs []outbox.Message
	rcConsumer, rcMessage = rcConsumer[:0], rcMessage[:0]
	for _, d := range live {
		if r := d.Request; r != nil {
			queueDispatched(w, dispatchedSQL, r, d.Version, d.Change.Timeline)
		}
		msgs = append(msgs, d.Change.Outbox...)
		if rc := d.Change.Receipt; rc != nil {
			rcConsumer, rcMessage = append(rcConsumer, rc.Consumer), append(rcMessage, rc.MessageID)
		}
	}
	queueOutbox(w, msgs)
	if len(rcConsumer) > 0 {
		w.Queue(`INSERT INTO processed_messages (consumer, message_id, processed_at)
			SELECT consumer, message_id, now() FROM unnest($1::text[], $2::text[]) AS x(consumer, message_id)`, rcConsumer, rcMessage)
	}
	if w.Len() > 0 {
		if err := tx.SendBatch(ctx, w).Close(); err != nil {
			return fmt.Errorf("write decisions: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if len(msgs) > 0 {
		s.outboxCommitted()
	}
	return nil
}

// readAll reads the results of br's queries after its BEGIN, one reader
// per query, and closes br.
func readAll(br pgx.BatchResults, readers ...func(pgx.Rows) error) error {
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	for _, read := range readers {
		rows, err := br.Query()
		if err != nil {
			return err
		}
		if err := read(rows); err != nil {
			return err
		}
	}
	return br.Close()
}

// forEach scans every row into dest and calls fn after each.
func forEach(rows pgx.Rows, fn func() error, dest ...any) error {
	defer rows.Close()
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		if err := fn(); err != nil {
			return err
		}
	}
	return rows.Err()
}

// dispatchedSQL writes what dispatch changes of a request: its status, its
// driver and updated_at, at the version after the one seen.
const dispatchedSQL = `UPDATE requests SET status = $2, driver_id = $3, driver_name = $4, driver_plate = $5,
	assigned_at = $6, eta_seconds = $7, updated_at = $8, version = $9 WHERE id = $1 AND version = $10`

const insertTimelineSQL = `INSERT INTO request_timeline (request_id, seq, status, at, actor_id, reason) VALUES ($1, $2, $3, $4, $5, $6)`

// queueDispatched queues r's update (dispatchedSQL or assignedSQL) and its timeline
// entry on b, and sets r's version and timeline as they will be.
func queueDispatched(b *pgx.Batch, update string, r *intake.Request, seen int, entry *intake.TimelineEntry) {
	var driverID, driverName, driverPlate *string
	var assignedAt *time.Time
	var eta *int32
	if a := r.Assignment; a != nil {
		e := int32(a.ETASeconds)
		driverID, driverName, driverPlate, assignedAt, eta = &a.DriverID, &a.DriverName, &a.VehiclePlate, &a.AssignedAt, &e
	}
	b.Queue(update, r.ID, string(r.Status), driverID, driverName, driverPlate, assignedAt, eta, r.UpdatedAt, seen+1, seen)
	r.Version = seen + 1
	if entry != nil {
		b.Queue(insertTimelineSQL, r.ID, len(r.Timeline)+1, string(entry.Status), entry.At, entry.ActorID, entry.Reason)
		r.Timeline = append(r.Timeline, *entry)
	}
}

// lockRequestSQL locks a request, named by its id or, when $1 is null, by
// an offer ($2). lockTimelineSQL and lockOfferSQL read the rest once the
// lock is held (separate statements: their snapshot is taken after it).
var (
	lockRequestSQL = `SELECT ` + selectRequestColumns + ` FROM requests r
		WHERE r.id = COALESCE($1, (SELECT request_id FROM offers WHERE id = $2)) FOR UPDATE OF r`
	lockTimelineSQL = `SELECT array_agg(status ORDER BY seq), array_agg(at ORDER BY seq), array_agg(actor_id ORDER BY seq),
		array_agg(reason ORDER BY seq) FROM request_timeline
		WHERE request_id = COALESCE($1, (SELECT request_id FROM offers WHERE id = $2))`
	lockOfferSQL  = `SELECT ` + offerColumns + ` FROM offers o WHERE o.id = $1 FOR UPDATE`
	lockDriverSQL = `SELECT u.id, u.name, d.vehicle_plate FROM users u JOIN drivers d ON d.user_id = u.id
		WHERE u.role = 'driver' AND u.id = COALESCE($1, (SELECT driver_id FROM offers WHERE id = $2)) FOR UPDATE OF d`
	// assignedSQL is dispatchedSQL for an assignment: it also requires the
	// driver ($3) to be on no other open job (0 rows otherwise), which the
	// driver's lock makes a stable answer.
	assignedSQL = dispatchedSQL + ` AND NOT ` + onJob("$3")
)

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Assign implements dispatch.Store: lock and read (one round trip), fn,
// write (one), commit.
func (s *Store) Assign(ctx context.Context, t dispatch.AssignTarget, fn func(*dispatch.Assigning) (intake.Change, error)) (intake.Request, error) {
	reqID, offerID, driverID := nullable(t.RequestID), nullable(t.OfferID), nullable(t.DriverID)
	if offerID != nil {
		reqID, driverID = nil, nil
	}
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.Queue(lockRequestSQL, reqID, offerID)
	b.Queue(lockTimelineSQL, reqID, offerID)
	if offerID != nil {
		b.Queue(lockOfferSQL, *offerID)
	}
	b.Queue(lockDriverSQL, driverID, offerID)
	br := s.pool.SendBatch(ctx, b)
	tx := br.Tx()
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	a := &dispatch.Assigning{}
	var r intake.Request
	var tl timelineArrays
	foundRequest, foundOffer, foundDriver := false, false, false
	readers := []func(pgx.Rows) error{
		func(rows pgx.Rows) error {
			defer rows.Close()
			if rows.Next() {
				var err error
				if r, err = scanRequest(rows); err != nil {
					return err
				}
				foundRequest = true
			}
			return rows.Err()
		},
		func(rows pgx.Rows) error { return forEach(rows, func() error { return nil }, tl.dest()...) },
	}
	if offerID != nil {
		readers = append(readers, func(rows pgx.Rows) error {
			defer rows.Close()
			if rows.Next() {
				o, err := scanOffer(rows)
				if err != nil {
					return err
				}
				a.Offer, foundOffer = &o, true
			}
			return rows.Err()
		})
	}
	readers = append(readers, func(rows pgx.Rows) error {
		return forEach(rows, func() error { foundDriver = true; return nil }, &a.Driver.ID, &a.Driver.Name, &a.Driver.VehiclePlate)
	})
	if err := readAll(br, readers...); err != nil {
		return intake.Request{}, fmt.Errorf("lock request: %w", err)
	}
	switch {
	case offerID != nil && !foundOffer:
		return intake.Request{}, dispatch.ErrOfferNotFound
	case !foundRequest:
		return intake.Request{}, intake.ErrNotFound
	case !foundDriver:
		return intake.Request{}, dispatch.ErrUnknownDriver
	}
	if err := tl.fill(&r); err != nil {
		return intake.Request{}, err
	}
	a.Request = &r
	seen := r.Version
	change, err := fn(a)
	if err != nil {
		return intake.Request{}, err
	}

	w := &pgx.Batch{}
	if a.Offer != nil {
		w.Queue(`UPDATE offers SET status = $2, decided_at = $3 WHERE id = $1 AND status = 'open'`, a.Offer.ID, string(a.Offer.Status), a.Offer.DecidedAt)
	}
	queueDispatched(w, assignedSQL, &r, seen, change.Timeline)
	queueOutbox(w, change.Outbox)
	wr := tx.SendBatch(ctx, w)
	err = func() error {
		defer wr.Close()
		if a.Offer != nil {
			tag, err := wr.Exec()
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return dispatch.ErrOfferClosed
			}
		}
		tag, err := wr.Exec()
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			// The version cannot have moved under the request's lock: the
			// driver is on another job.
			return dispatch.ErrDriverBusy
		}
		return wr.Close()
	}()
	switch {
	case isUniqueViolation(err, "requests_one_open_job_per_driver"):
		return intake.Request{}, dispatch.ErrDriverBusy
	case isUniqueViolation(err, "offers_one_accepted_per_request"):
		return intake.Request{}, dispatch.ErrOfferClosed
	case errors.Is(err, dispatch.ErrOfferClosed), errors.Is(err, dispatch.ErrDriverBusy), errors.Is(err, dispatch.ErrStale):
		return intake.Request{}, err
	case err != nil:
		return intake.Request{}, fmt.Errorf("assign: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		if isUniqueViolation(err, "") {
			return intake.Request{}, dispatch.ErrDriverBusy
		}
		return intake.Request{}, fmt.Errorf("commit: %w", err)
	}
	if len(change.Outbox) > 0 {
		s.outboxCommitted()
	}
	return r, nil
}

// CloseOffer implements dispatch.Store.
func (s *Store) CloseOffer(ctx context.Context, offerID string, fn func(o *dispatch.Offer, r *intake.Request) ([]outbox.Message, error)) (dispatch.Offer, error) {
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.Queue(lockRequestSQL, nil, offerID)
	b.Queue(lockOfferSQL, offerID)
	br := s.pool.SendBatch(ctx, b)
	tx := br.Tx()
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var r intake.Request
	var o dispatch.Offer
	foundRequest, foundOffer := false, false
	err := readAll(br,
		func(rows pgx.Rows) error {
			defer rows.Close()
			if rows.Next() {
				var err error
				if r, err = scanRequest(rows); err != nil {
					return err
				}
				foundRequest = true
			}
			return rows.Err()
		},
		func(rows pgx.Rows) error {
			defer rows.Close()
			if rows.Next() {
				var err error
				if o, err = scanOffer(rows); err != nil {
					return err
				}
				foundOffer = true
			}
			return rows.Err()
		})
	if err != nil {
		return dispatch.Offer{}, fmt.Errorf("lock offer: %w", err)
	}
	if !foundOffer || !foundRequest {
		return dispatch.Offer{}, dispatch.ErrOfferNotFound
	}
	msgs, err := fn(&o, &r)
	if err != nil {
		return dispatch.Offer{}, err
	}
	w := &pgx.Batch{}
	w.Queue(`UPDATE offers SET status = $2, decided_at = $3 WHERE id = $1 AND status = 'open'`, o.ID, string(o.Status), o.DecidedAt)
	queueOutbox(w, msgs)
	wr := tx.SendBatch(ctx, w)
	tag, err := wr.Exec()
	if err == nil && tag.RowsAffected() == 0 {
		err = dispatch.ErrOfferClosed
	}
	if cerr := wr.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close offer: %w", cerr)
	}
	if err != nil {
		return dispatch.Offer{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return dispatch.Offer{}, fmt.Errorf("commit: %w", err)
	}
	if len(msgs) > 0 {
		s.outboxCommitted()
	}
	return o, nil
}

// ExpireOffers implements dispatch.Store. The offers are locked FOR UPDATE
// SKIP LOCKED, so expirers in several processes share the work and an
// offer being accepted right now is left to its accept. Requests are read,
// not locked: an expiry never waits for a request's writer.
func (s *Store) ExpireOffers(ctx context.Context, now time.Time, limit int, fn func(o *dispatch.Offer, r *intake.Request) ([]outbox.Message, error)) ([]dispatch.Offer, error) {
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.Queue(`SELECT `+selectRequestColumns+`, `+offerColumns+` FROM offers o JOIN requests r ON r.id = o.request_id
		WHERE o.status = 'open' AND o.expires_at <= $1 ORDER BY o.expires_at LIMIT $2 FOR UPDATE OF o SKIP LOCKED`, now, limit)
	br := s.pool.SendBatch(ctx, b)
	tx := br.Tx()
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var due []dispatch.Offer
	var reqs []intake.Request
	err := readAll(br, func(rows pgx.Rows) error {
		defer rows.Close()
		for rows.Next() {
			var od offerDest
			r, err := scanRequest(rows, od.dest()...)
			if err != nil {
				return err
			}
			due, reqs = append(due, od.offer()), append(reqs, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("find expired offers: %w", err)
	}
	if len(due) == 0 {
		return nil, nil
	}
	var msgs []outbox.Message
	ids, statuses := make([]string, len(due)), make([]string, len(due))
	decided := make([]*time.Time, len(due))
	for i := range due {
		m, err := fn(&due[i], &reqs[i])
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m...)
		ids[i], statuses[i], decided[i] = due[i].ID, string(due[i].Status), due[i].DecidedAt
	}
	w := &pgx.Batch{}
	w.Queue(`UPDATE offers o SET status = x.status, decided_at = x.decided_at
		FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS x(id, status, decided_at) WHERE o.id = x.id`, ids, statuses, decided)
	queueOutbox(w, msgs)
	if err := tx.SendBatch(ctx, w).Close(); err != nil {
		return nil, fmt.Errorf("expire offers: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	if len(msgs) > 0 {
		s.outboxCommitted()
	}
	return due, nil
}

// OpenOffers implements dispatch.Store.
func (s *Store) OpenOffers(ctx context.Context, driverID string, now time.Time) ([]dispatch.OfferView, error) {
	rows, err := s.pool.Query(ctx, `SELECT o.id, o.request_id, r.service_type, r.lat, r.lng, r.address, r.province, r.district,
			o.distance_m, o.eta_seconds, o.expires_at
		FROM offers o JOIN requests r ON r.id = o.request_id
		WHERE o.driver_id = $1 AND o.status = 'open' AND o.expires_at > $2 ORDER BY o.created_at, o.id`, driverID, now)
	if err != nil {
		return nil, fmt.Errorf("read offers: %w", err)
	}
	out := []dispatch.OfferView{}
	var v dispatch.OfferView
	var service string
	var dist, eta int32
	err = forEach(rows, func() error {
		v.ServiceType, v.DistanceM, v.ETASeconds, v.ExpiresAt = intake.ServiceType(service), int(dist), int(eta), utc(v.ExpiresAt)
		out = append(out, v)
		return nil
	}, &v.OfferID, &v.RequestID, &service, &v.Location.Lat, &v.Location.Lng, &v.Location.Address,
		&v.Location.Province, &v.Location.District, &dist, &eta, &v.ExpiresAt)
	if err != nil {
		return nil, fmt.Errorf("read offers: %w", err)
	}
	return out, nil
}

// OfferedTo implements dispatch.Store and intake.OfferLookup.
func (s *Store) OfferedTo(ctx context.Context, requestID, driverID string) (bool, error) {
	var ok bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM offers WHERE request_id = $1 AND driver_id = $2 AND status = 'open')`,
		requestID, driverID).Scan(&ok); err != nil {
		return false, fmt.Errorf("read offers: %w", err)
	}
	return ok, nil
}
