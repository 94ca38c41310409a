package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/yolda/yolda/internal/dispatch"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
)

// The dispatch store: offers, decisions and assignments.
//
// Locks, and why no two transactions wait for each other in a circle:
// request rows come first (FOR UPDATE, several in id order: lockRequests,
// which intake's updates take too). An offer row is waited for only by a
// transaction that holds the offer's request (Assign, CloseOffer, the
// withdrawal trigger of the dispatch migration inside a request's update),
// or by none: ExpireOffers skips locked offers and locks nothing else.
// Driver rows come after the request (Assign FOR UPDATE; worker batches
// FOR SHARE in id order, then insert offers in driver order, so two of
// them meet on a driver's unique key in one order only). A manual Assign
// fires the trigger after locking the driver; by the rule above, whoever
// holds that offer holds its request too, so it cannot be waiting for us.

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

// onJob is true of the driver whose id is the expression id when it is on
// an open job: the statuses of requests_one_open_job_per_driver, whose
// index it uses. A driver's current job is derived from requests (see the
// fleet migration).
func onJob(id string) string {
	return `EXISTS (SELECT 1 FROM requests j WHERE j.driver_id = ` + id + `
	AND j.status IN ('assigned', 'en_route', 'arrived', 'in_service'))`
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
	var out []dispatch.Snapshot
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("read requests: %w", err)
	}
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
	offers, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("read offers: %w", err)
	}
	defer offers.Close()
	for offers.Next() {
		o, err := scanOffer(offers)
		if err != nil {
			return nil, fmt.Errorf("scan offer: %w", err)
		}
		if sn := byID[o.RequestID]; sn != nil {
			sn.Offers = append(sn.Offers, o)
		}
	}
	if err := offers.Err(); err != nil {
		return nil, fmt.Errorf("read offers: %w", err)
	}
	return out, nil
}

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
// order: an assignment of one of them (which locks its driver FOR UPDATE)
// waits for this transaction, and this one for an assignment in flight.
// insertOffersSQL, a later statement, then sees whatever the assignments
// before it committed, and inserts the offers whose driver is online and
// on no job. A driver holding an open offer, or a request offered to the
// driver before, hits a unique index: the row is skipped. Rows go in
// driver order.
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
// lock the drivers and insert the offers; write the rest; commit.
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

	versions := make(map[string]int, len(ids))
	counts := make(map[string]int, len(ids))
	seen := map[outbox.Receipt]bool{}
	reads := []read{
		{
			// The version is all a decision is checked against: not the
			// whole row and its timeline (lockRequests).
			sql:  `SELECT id, version FROM requests WHERE id = ANY($1) ORDER BY id FOR UPDATE`,
			args: []any{ids},
			scan: func(row pgx.CollectableRow) error {
				var id string
				var v int32
				err := row.Scan(&id, &v)
				versions[id] = int(v)
				return err
			},
		},
		{
			sql:  `SELECT request_id, count(*) FROM offers WHERE request_id = ANY($1) GROUP BY request_id`,
			args: []any{ids},
			scan: func(row pgx.CollectableRow) error {
				var id string
				var n int64
				err := row.Scan(&id, &n)
				counts[id] = int(n)
				return err
			},
		},
		read{
			sql: `SELECT p.consumer, p.message_id FROM processed_messages p
				JOIN unnest($1::text[], $2::text[]) AS x(consumer, message_id) ON p.consumer = x.consumer AND p.message_id = x.message_id`,
			args: []any{rcConsumer, rcMessage},
			scan: func(row pgx.CollectableRow) error {
				var rc outbox.Receipt
				err := row.Scan(&rc.Consumer, &rc.MessageID)
				seen[rc] = true
				return err
			},
		},
	}
	tx, err := s.beginRead(ctx, reads...)
	if err != nil {
		return fmt.Errorf("lock requests: %w", err)
	}
	defer rollback(ctx, tx)

	var live []*dispatch.Decision
	var offers offerRows
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
		// Two decisions for one request cannot both hold: the first
		// changes what the second relied on.
		counts[d.RequestID] = -1
		live = append(live, d)
		if d.Offer != nil {
			offers.add(d.Offer)
		}
	}
	if len(live) == 0 {
		return nil // the deferred rollback ends the transaction
	}
	if len(offers.id) > 0 {
		inserted, err := insertOffers(ctx, tx, &offers)
		if err != nil {
			return err
		}
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
	if len(live) == 0 {
		return nil
	}

	w := &pgx.Batch{}
	var changes statusChanges
	var msgs []outbox.Message
	rcConsumer, rcMessage = rcConsumer[:0], rcMessage[:0]
	for _, d := range live {
		if r := d.Request; r != nil {
			if r.Version != d.Version+1 {
				return fmt.Errorf("decision for %s: version %d after %d: %w", r.ID, r.Version, d.Version, intake.ErrVersion)
			}
			changes.add(r, d.Change.Timeline)
		}
		msgs = append(msgs, d.Change.Outbox...)
		if rc := d.Change.Receipt; rc != nil {
			rcConsumer, rcMessage = append(rcConsumer, rc.Consumer), append(rcMessage, rc.MessageID)
		}
	}
	if len(changes.id) > 0 {
		w.Queue(updateStatusesSQL, changes.id, changes.status, changes.updatedAt, changes.version)
		if len(changes.tl.tlRequest) > 0 {
			w.Queue(insertTimelineSQL, changes.tl.timelineArgs()...)
		}
	}
	queueOutbox(w, msgs)
	if len(rcConsumer) > 0 {
		w.Queue(`INSERT INTO processed_messages (consumer, message_id, processed_at)
			SELECT consumer, message_id, now() FROM unnest($1::text[], $2::text[]) AS x(consumer, message_id)`, rcConsumer, rcMessage)
	}
	wr := tx.SendBatch(ctx, w)
	if len(changes.id) > 0 {
		tag, err := wr.Exec()
		if err == nil && tag.RowsAffected() != int64(len(changes.id)) {
			err = intake.ErrVersion // unreachable under the locks
		}
		if err != nil {
			wr.Close()
			return fmt.Errorf("write decisions: %w", err)
		}
	}
	if err := wr.Close(); err != nil {
		return fmt.Errorf("write decisions: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	s.outboxCommitted()
	return nil
}

// updateStatusesSQL writes what decisions change of their requests
// (status, updated_at, version), given column by column, over the
// versions they were made on. The rest of each row is as it was: the
// full-row updateRequestsSQL would send and compare every column.
const updateStatusesSQL = `UPDATE requests AS t SET status = u.status, updated_at = u.updated_at, version = u.version,
	next_nudge_at = NULL, nudges = 0, stuck_at = NULL
FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int4[]) AS u(id, status, updated_at, version)
WHERE t.id = u.id AND t.version = u.version - 1`

// statusChanges holds decisions' request changes column by column, and
// their timeline entries.
type statusChanges struct {
	id, status []string
	updatedAt  []time.Time
	version    []int32
	tl         requestArrays
}

// add appends r's change and its entry e (if any), appended to r.Timeline.
func (c *statusChanges) add(r *intake.Request, e *intake.TimelineEntry) {
	c.id, c.status = append(c.id, r.ID), append(c.status, string(r.Status))
	c.updatedAt, c.version = append(c.updatedAt, r.UpdatedAt), append(c.version, int32(r.Version))
	if e != nil {
		e.Version = r.Version
		c.tl.addTimeline(r.ID, len(r.Timeline)+1, r.Version, *e)
		r.Timeline = append(r.Timeline, *e)
	}
}

// offerRows holds offers to insert column by column.
type offerRows struct {
	id, request, driver []string
	round, eta, dist    []int32
	created, expires    []time.Time
}

func (a *offerRows) add(o *dispatch.Offer) {
	a.id, a.request, a.driver = append(a.id, o.ID), append(a.request, o.RequestID), append(a.driver, o.DriverID)
	a.round, a.eta, a.dist = append(a.round, int32(o.Round)), append(a.eta, int32(o.ETASeconds)), append(a.dist, int32(o.DistanceM))
	a.created, a.expires = append(a.created, o.CreatedAt), append(a.expires, o.ExpiresAt)
}

// insertOffers locks the offers' drivers and inserts the offers that still
// may be made (lockDriversSQL, insertOffersSQL); it returns the ids of
// those inserted, sorted.
func insertOffers(ctx context.Context, tx pgx.Tx, a *offerRows) ([]string, error) {
	drivers := slices.Clone(a.driver)
	slices.Sort(drivers)
	b := &pgx.Batch{}
	b.Queue(lockDriversSQL, slices.Compact(drivers))
	b.Queue(insertOffersSQL, a.id, a.request, a.driver, a.round, a.eta, a.dist, a.created, a.expires)
	br := tx.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("lock drivers: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("insert offers: %w", err)
	}
	inserted, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("insert offers: %w", err)
	}
	slices.Sort(inserted)
	return inserted, nil
}

// endOfferSQL writes an offer's end; only an open offer ends.
const endOfferSQL = `UPDATE offers SET status = $2, decided_at = $3 WHERE id = $1 AND status = 'open'`

// offerRequest is the request an offer is for.
func (s *Store) offerRequest(ctx context.Context, offerID string) (string, error) {
	var id string
	err := s.pool.QueryRow(ctx, `SELECT request_id FROM offers WHERE id = $1`, offerID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", dispatch.ErrOfferNotFound
	}
	if err != nil {
		return "", fmt.Errorf("read offer: %w", err)
	}
	return id, nil
}

// lockOffer is the read that locks an offer (after its request).
func lockOffer(offerID string, out **dispatch.Offer) read {
	return read{
		sql: `SELECT ` + offerColumns + ` FROM offers o WHERE o.id = $1 FOR UPDATE`, args: []any{offerID},
		scan: func(row pgx.CollectableRow) error {
			o, err := scanOffer(row)
			*out = &o
			return err
		},
	}
}

// Assign implements dispatch.Store: lock and read (one round trip, and one
// more first to find an offer's request), fn, write (one), commit.
func (s *Store) Assign(ctx context.Context, t dispatch.AssignTarget, fn func(*dispatch.Assigning) (intake.Change, error)) (intake.Request, error) {
	requestID := t.RequestID
	if t.OfferID != "" {
		var err error
		if requestID, err = s.offerRequest(ctx, t.OfferID); err != nil {
			return intake.Request{}, err
		}
	}
	var locked []intake.Request
	a := &dispatch.Assigning{}
	reads := lockRequests([]string{requestID}, &locked)
	driver := `$1`
	driverArg := any(t.DriverID)
	if t.OfferID != "" {
		reads = append(reads, lockOffer(t.OfferID, &a.Offer))
		driver, driverArg = `(SELECT driver_id FROM offers WHERE id = $1)`, t.OfferID
	}
	found, busy := false, false
	reads = append(reads,
		read{
			sql: `SELECT u.id, u.name, d.vehicle_plate, d.availability, d.vehicle_kind, d.capabilities
				FROM users u JOIN drivers d ON d.user_id = u.id
				WHERE u.role = 'driver' AND u.id = ` + driver + ` FOR UPDATE OF d`,
			args: []any{driverArg},
			scan: func(row pgx.CollectableRow) error {
				found = true
				var avail, kind string
				var caps []string
				if err := row.Scan(&a.Driver.ID, &a.Driver.Name, &a.Driver.VehiclePlate, &avail, &kind, &caps); err != nil {
					return err
				}
				a.Driver.Availability, a.Driver.VehicleKind = fleet.Availability(avail), fleet.VehicleKind(kind)
				for _, c := range caps {
					a.Driver.Capabilities = append(a.Driver.Capabilities, intake.ServiceType(c))
				}
				return nil
			},
		},
		// After the driver's lock: sees every assignment committed before.
		read{
			sql:  `SELECT ` + onJob(driver) + ` AS busy`,
			args: []any{driverArg},
			scan: func(row pgx.CollectableRow) error { return row.Scan(&busy) },
		})
	tx, err := s.beginRead(ctx, reads...)
	if err != nil {
		return intake.Request{}, fmt.Errorf("lock request: %w", err)
	}
	defer rollback(ctx, tx)
	switch {
	case len(locked) == 0:
		return intake.Request{}, intake.ErrNotFound
	case t.OfferID != "" && a.Offer == nil:
		return intake.Request{}, dispatch.ErrOfferNotFound
	case !found:
		return intake.Request{}, dispatch.ErrUnknownDriver
	}
	r := locked[0]
	a.Request = &r
	before := r.Version
	change, err := fn(a)
	if err != nil {
		return intake.Request{}, err
	}
	if busy {
		return intake.Request{}, dispatch.ErrDriverBusy
	}
	if r.Version != before+1 {
		return intake.Request{}, fmt.Errorf("assign %s: version %d after %d: %w", r.ID, r.Version, before, intake.ErrVersion)
	}

	w := &pgx.Batch{}
	if a.Offer != nil {
		w.Queue(endOfferSQL, a.Offer.ID, string(a.Offer.Status), a.Offer.DecidedAt)
	}
	queueRequestChanges(w, []requestChange{{Request: &r, Entry: change.Timeline, Outbox: change.Outbox}})
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
		if tag.RowsAffected() != 1 {
			return intake.ErrVersion // unreachable under the lock
		}
		return wr.Close()
	}()
	switch {
	case isUniqueViolation(err, "requests_one_open_job_per_driver"):
		return intake.Request{}, dispatch.ErrDriverBusy
	case isUniqueViolation(err, "offers_one_accepted_per_request"):
		return intake.Request{}, dispatch.ErrOfferClosed
	case errors.Is(err, dispatch.ErrOfferClosed):
		return intake.Request{}, err
	case err != nil:
		return intake.Request{}, fmt.Errorf("assign %s: %w", r.ID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		if isUniqueViolation(err, "requests_one_open_job_per_driver") {
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
	requestID, err := s.offerRequest(ctx, offerID)
	if err != nil {
		return dispatch.Offer{}, err
	}
	var locked []intake.Request
	var o *dispatch.Offer
	tx, err := s.beginRead(ctx, append(lockRequests([]string{requestID}, &locked), lockOffer(offerID, &o))...)
	if err != nil {
		return dispatch.Offer{}, fmt.Errorf("lock offer: %w", err)
	}
	defer rollback(ctx, tx)
	if len(locked) == 0 || o == nil {
		return dispatch.Offer{}, dispatch.ErrOfferNotFound
	}
	msgs, err := fn(o, &locked[0])
	if err != nil {
		return dispatch.Offer{}, err
	}
	w := &pgx.Batch{}
	w.Queue(endOfferSQL, o.ID, string(o.Status), o.DecidedAt)
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
	return *o, nil
}

// ExpireOffers implements dispatch.Store. The offers are locked FOR UPDATE
// SKIP LOCKED, so expirers in several processes share the work and an
// offer being accepted right now is left to its accept. Requests are read,
// not locked: an expiry never waits for a request's writer.
func (s *Store) ExpireOffers(ctx context.Context, now time.Time, limit int, fn func(o *dispatch.Offer, r *intake.Request) ([]outbox.Message, error)) ([]dispatch.Offer, error) {
	var due []dispatch.Offer
	var reqs []intake.Request
	tx, err := s.beginRead(ctx, read{
		sql: `SELECT ` + selectRequestColumns + `, ` + offerColumns + ` FROM offers o JOIN requests r ON r.id = o.request_id
			WHERE o.status = 'open' AND o.expires_at <= $1 ORDER BY o.expires_at LIMIT $2 FOR UPDATE OF o SKIP LOCKED`,
		args: []any{now, limit},
		scan: func(row pgx.CollectableRow) error {
			var od offerDest
			r, err := scanRequest(row, od.dest()...)
			if err != nil {
				return err
			}
			due, reqs = append(due, od.offer()), append(reqs, r)
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("find expired offers: %w", err)
	}
	defer rollback(ctx, tx)
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
	defer rows.Close()
	out := []dispatch.OfferView{}
	for rows.Next() {
		var v dispatch.OfferView
		var service string
		var dist, eta int32
		if err := rows.Scan(&v.OfferID, &v.RequestID, &service, &v.Location.Lat, &v.Location.Lng, &v.Location.Address,
			&v.Location.Province, &v.Location.District, &dist, &eta, &v.ExpiresAt); err != nil {
			return nil, fmt.Errorf("scan offer: %w", err)
		}
		v.ServiceType, v.DistanceM, v.ETASeconds, v.ExpiresAt = intake.ServiceType(service), int(dist), int(eta), utc(v.ExpiresAt)
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
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
