package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/yolda/yolda/internal/dispatch"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
)

// The dispatch store: offers, decisions and assignments. SQLite has one
// writer (BEGIN IMMEDIATE on a single connection), so every transaction
// here sees the latest state and nothing races inside one; the checks
// below matter against decisions made on snapshots read before, and the
// partial unique indexes of the dispatch migration (0007) stay the final guard.

var _ dispatch.Store = (*Store)(nil)

const offerColumns = `id, request_id, driver_id, round, eta_seconds, distance_m, status, created_at, expires_at, decided_at`

func scanOffer(row rowScanner) (dispatch.Offer, error) {
	var o dispatch.Offer
	var status string
	var created, expires int64
	var decided sql.NullInt64
	if err := row.Scan(&o.ID, &o.RequestID, &o.DriverID, &o.Round, &o.ETASeconds, &o.DistanceM, &status, &created, &expires, &decided); err != nil {
		return dispatch.Offer{}, err
	}
	o.Status = dispatch.OfferStatus(status)
	o.CreatedAt, o.ExpiresAt = fromMicros(created), fromMicros(expires)
	if decided.Valid {
		t := fromMicros(decided.Int64)
		o.DecidedAt = &t
	}
	return o, nil
}

// inList is "IN" one JSON array of values, the statement's one argument
// (jsonList): its text stays the same whatever the number of values, so
// it is prepared once, and a batch may hold more values than SQLite binds
// variables (32766).
const inList = `IN (SELECT value FROM json_each(?))`

// jsonList is the argument of inList.
func jsonList[T string | int64](vals []T) string {
	b, _ := json.Marshal(vals) // strings and integers always encode
	return string(b)
}

// Snapshots implements dispatch.Store, from one read transaction.
func (s *Store) Snapshots(ctx context.Context, requestIDs []string) ([]dispatch.Snapshot, error) {
	if len(requestIDs) == 0 {
		return nil, nil
	}
	var out []dispatch.Snapshot
	err := s.readSnapshot(ctx, func(tx *txn) error {
		ids := jsonList(requestIDs)
		reqs, err := readRequests(ctx, tx, `WHERE id `+inList, ids)
		if err != nil || len(reqs) == 0 {
			return err
		}
		out = make([]dispatch.Snapshot, len(reqs))
		byID := make(map[string]*dispatch.Snapshot, len(reqs))
		for i, r := range reqs {
			out[i].Request = r
			byID[r.ID] = &out[i]
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+offerColumns+` FROM offers WHERE request_id `+inList+`
			ORDER BY request_id, created_at, id`, ids)
		if err != nil {
			return fmt.Errorf("read offers: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			o, err := scanOffer(rows)
			if err != nil {
				return fmt.Errorf("scan offer: %w", err)
			}
			if sn := byID[o.RequestID]; sn != nil {
				sn.Offers = append(sn.Offers, o)
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// onJobCond is true of a driver (d) on an open job: the statuses of
// requests_one_open_job_per_driver, whose index it uses.
const onJobCond = `EXISTS (SELECT 1 FROM requests j WHERE j.driver_id = d.user_id
	AND j.status IN ('assigned', 'en_route', 'arrived', 'in_service'))`

// freeDriverCond is what makes a driver (d) free to be offered a job, by
// the database's truth: online, on no job, holding no open offer.
const freeDriverCond = `d.availability = 'online' AND NOT ` + onJobCond + `
	AND NOT EXISTS (SELECT 1 FROM offers o WHERE o.driver_id = d.user_id AND o.status = 'open')`

// FreeDrivers implements dispatch.Store.
func (s *Store) FreeDrivers(ctx context.Context, driverIDs []string) ([]string, error) {
	if len(driverIDs) == 0 {
		return nil, nil
	}
	rows, err := s.read.QueryContext(ctx, `SELECT d.user_id FROM drivers d WHERE d.user_id `+inList+` AND `+freeDriverCond,
		jsonList(driverIDs))
	if err != nil {
		return nil, fmt.Errorf("read free drivers: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("scan driver: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

const insertOfferSQL = `INSERT INTO offers (` + offerColumns + `)
	SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM drivers d WHERE d.user_id = ? AND ` + freeDriverCond + `)
	ON CONFLICT DO NOTHING`

func offerArgs(o *dispatch.Offer) []any {
	return []any{o.ID, o.RequestID, o.DriverID, o.Round, o.ETASeconds, o.DistanceM, string(o.Status),
		toMicros(o.CreatedAt), toMicros(o.ExpiresAt), nullMicros(o.DecidedAt)}
}

// CommitDecisions implements dispatch.Store: one transaction; each
// decision is checked against the current state before anything of it is
// written, so a refused one leaves nothing behind.
func (s *Store) CommitDecisions(ctx context.Context, ds []*dispatch.Decision) error {
	for _, d := range ds {
		d.Err = nil
	}
	return s.tx(ctx, func(tx *txn) error {
		now := time.Now()
		for _, d := range ds {
			err := commitDecision(ctx, tx, d, now)
			if errors.Is(err, dispatch.ErrStale) || errors.Is(err, dispatch.ErrDriverTaken) || errors.Is(err, outbox.ErrAlreadyProcessed) {
				d.Err = err
				continue
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// checkDecisionSQL reads what a decision was made on, and whether its
// receipt is recorded, in one statement: it runs once per decision in the
// writer's transaction.
const checkDecisionSQL = `SELECT version, (SELECT count(*) FROM offers WHERE request_id = r.id),
	EXISTS (SELECT 1 FROM processed_messages WHERE consumer = ? AND message_id = ?) FROM requests r WHERE r.id = ?`

// updateStatusSQL writes what a decision changes of a request (status,
// updated_at, version) over the version it was made on: the columns of
// the requests_status and requests_open indexes only, where
// updateRequestSQL rewrites every column and so every index.
const updateStatusSQL = `UPDATE requests SET status = ?, updated_at = ?, version = ?, next_nudge_at = NULL, nudges = 0, stuck_at = NULL
	WHERE id = ? AND version = ?`

func commitDecision(ctx context.Context, tx *txn, d *dispatch.Decision, now time.Time) error {
	var consumer, messageID string
	if rc := d.Change.Receipt; rc != nil {
		consumer, messageID = rc.Consumer, rc.MessageID
	}
	var version, offers int
	var seen bool
	err := tx.QueryRowContext(ctx, checkDecisionSQL, consumer, messageID, d.RequestID).Scan(&version, &offers, &seen)
	if errors.Is(err, sql.ErrNoRows) || err == nil && (version != d.Version || offers != d.Offers) {
		return dispatch.ErrStale
	}
	if err != nil {
		return fmt.Errorf("check request %s: %w", d.RequestID, err)
	}
	if seen {
		return outbox.ErrAlreadyProcessed
	}
	if o := d.Offer; o != nil {
		res, err := tx.ExecContext(ctx, insertOfferSQL, append(offerArgs(o), o.DriverID)...)
		if err != nil {
			return fmt.Errorf("insert offer: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return dispatch.ErrDriverTaken
		}
	}
	if r := d.Request; r != nil {
		if r.Version != d.Version+1 {
			return fmt.Errorf("decision for %s: version %d after %d: %w", r.ID, r.Version, d.Version, intake.ErrVersion)
		}
		// applyChange writes the outbox rows too.
		if err := applyChange(ctx, tx, r, d.Version, d.Change, updateStatusSQL,
			string(r.Status), toMicros(r.UpdatedAt), r.Version, r.ID, d.Version); err != nil {
			return err
		}
	} else if err := insertOutbox(ctx, tx, d.Change.Outbox); err != nil {
		return err
	}
	if rc := d.Change.Receipt; rc != nil {
		if err := recordReceipt(ctx, tx, *rc, now); err != nil {
			return err
		}
	}
	return nil
}

// readRequest reads one request in tx, with its timeline.
func readRequest(ctx context.Context, tx *txn, id string) (intake.Request, error) {
	found, err := readRequests(ctx, tx, `WHERE id = ?`, id)
	if err != nil {
		return intake.Request{}, err
	}
	if len(found) == 0 {
		return intake.Request{}, intake.ErrNotFound
	}
	return found[0], nil
}

func readOffer(ctx context.Context, tx *txn, offerID string) (dispatch.Offer, error) {
	o, err := scanOffer(tx.QueryRowContext(ctx, `SELECT `+offerColumns+` FROM offers WHERE id = ?`, offerID))
	if errors.Is(err, sql.ErrNoRows) {
		return dispatch.Offer{}, dispatch.ErrOfferNotFound
	}
	if err != nil {
		return dispatch.Offer{}, fmt.Errorf("read offer: %w", err)
	}
	return o, nil
}

// endOffer writes an offer's end; only an open offer ends.
func endOffer(ctx context.Context, tx *txn, o *dispatch.Offer) error {
	res, err := tx.ExecContext(ctx, `UPDATE offers SET status = ?, decided_at = ? WHERE id = ? AND status = 'open'`,
		string(o.Status), nullMicros(o.DecidedAt), o.ID)
	if err != nil {
		return fmt.Errorf("end offer: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return dispatch.ErrOfferClosed
	}
	return nil
}

// Assign implements dispatch.Store.
func (s *Store) Assign(ctx context.Context, t dispatch.AssignTarget, fn func(*dispatch.Assigning) (intake.Change, error)) (intake.Request, error) {
	var out intake.Request
	err := s.tx(ctx, func(tx *txn) error {
		a := &dispatch.Assigning{}
		requestID, driverID := t.RequestID, t.DriverID
		if t.OfferID != "" {
			o, err := readOffer(ctx, tx, t.OfferID)
			if err != nil {
				return err
			}
			a.Offer = &o
			requestID, driverID = o.RequestID, o.DriverID
		}
		r, err := readRequest(ctx, tx, requestID)
		if err != nil {
			return err
		}
		a.Request = &r
		var avail, kind, caps string
		err = tx.QueryRowContext(ctx, `SELECT u.id, u.name, d.vehicle_plate, d.availability, d.vehicle_kind, d.capabilities
			FROM users u JOIN drivers d ON d.user_id = u.id
			WHERE u.id = ? AND u.role = 'driver'`, driverID).Scan(&a.Driver.ID, &a.Driver.Name, &a.Driver.VehiclePlate, &avail, &kind, &caps)
		if errors.Is(err, sql.ErrNoRows) {
			return dispatch.ErrUnknownDriver
		}
		if err != nil {
			return fmt.Errorf("read driver: %w", err)
		}
		a.Driver.Availability, a.Driver.VehicleKind = fleet.Availability(avail), fleet.VehicleKind(kind)
		if err := json.Unmarshal([]byte(caps), &a.Driver.Capabilities); err != nil {
			return fmt.Errorf("decode capabilities: %w", err)
		}
		seen := r.Version
		change, err := fn(a)
		if err != nil {
			return err
		}
		if a.Offer != nil {
			if err := endOffer(ctx, tx, a.Offer); err != nil {
				return err
			}
		}
		var busy bool
		if err := tx.QueryRowContext(ctx, `SELECT `+onJobCond+` FROM drivers d WHERE d.user_id = ?`, driverID).Scan(&busy); err != nil {
			return fmt.Errorf("check driver: %w", err)
		}
		if busy {
			return dispatch.ErrDriverBusy
		}
		if r.Version != seen+1 {
			return fmt.Errorf("assign %s: version %d after %d: %w", r.ID, r.Version, seen, intake.ErrVersion)
		}
		if err := writeChange(ctx, tx, &r, seen, change); err != nil {
			if strings.Contains(err.Error(), "requests.driver_id") {
				return dispatch.ErrDriverBusy // the one-open-job-per-driver index
			}
			return err
		}
		out = r
		return nil
	})
	return out, err
}

// CloseOffer implements dispatch.Store.
func (s *Store) CloseOffer(ctx context.Context, offerID string, fn func(o *dispatch.Offer, r *intake.Request) ([]outbox.Message, error)) (dispatch.Offer, error) {
	var out dispatch.Offer
	err := s.tx(ctx, func(tx *txn) error {
		o, err := readOffer(ctx, tx, offerID)
		if err != nil {
			return err
		}
		found, err := readRequestRows(ctx, tx, `WHERE id = ?`, o.RequestID)
		if err != nil {
			return err
		}
		if len(found) == 0 {
			return fmt.Errorf("offer %s: %w", o.ID, intake.ErrNotFound) // unreachable: a foreign key
		}
		if err := closeOffer(ctx, tx, &o, &found[0], fn); err != nil {
			return err
		}
		out = o
		return nil
	})
	return out, err
}

// closeOffer lets fn end o, an offer for r, and writes the end with fn's
// outbox messages.
func closeOffer(ctx context.Context, tx *txn, o *dispatch.Offer, r *intake.Request,
	fn func(o *dispatch.Offer, r *intake.Request) ([]outbox.Message, error)) error {
	msgs, err := fn(o, r)
	if err != nil {
		return err
	}
	if err := endOffer(ctx, tx, o); err != nil {
		return err
	}
	return insertOutbox(ctx, tx, msgs)
}

// ExpireOffers implements dispatch.Store. One writer: nothing to skip.
func (s *Store) ExpireOffers(ctx context.Context, now time.Time, limit int, fn func(o *dispatch.Offer, r *intake.Request) ([]outbox.Message, error)) ([]dispatch.Offer, error) {
	var out []dispatch.Offer
	err := s.tx(ctx, func(tx *txn) error {
		out = out[:0]
		rows, err := tx.QueryContext(ctx, `SELECT `+offerColumns+` FROM offers WHERE status = 'open' AND expires_at <= ?
			ORDER BY expires_at LIMIT ?`, toMicros(now), limit)
		if err != nil {
			return fmt.Errorf("find expired offers: %w", err)
		}
		var due []dispatch.Offer
		for rows.Next() {
			o, err := scanOffer(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("scan offer: %w", err)
			}
			due = append(due, o)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("find expired offers: %w", err)
		}
		if len(due) == 0 {
			return nil
		}
		// Their requests in one read, not one each: this runs in the one
		// writer's transaction.
		reqIDs := make([]string, len(due))
		for i, o := range due {
			reqIDs[i] = o.RequestID
		}
		reqs, err := readRequestRows(ctx, tx, `WHERE id `+inList, jsonList(reqIDs))
		if err != nil {
			return err
		}
		byID := make(map[string]*intake.Request, len(reqs))
		for i := range reqs {
			byID[reqs[i].ID] = &reqs[i]
		}
		for _, o := range due {
			r := byID[o.RequestID]
			if r == nil {
				return fmt.Errorf("offer %s: %w", o.ID, intake.ErrNotFound) // unreachable: a foreign key
			}
			if err := closeOffer(ctx, tx, &o, r, fn); err != nil {
				return err
			}
			out = append(out, o)
		}
		return nil
	})
	return out, err
}

// OpenOffers implements dispatch.Store.
func (s *Store) OpenOffers(ctx context.Context, driverID string, now time.Time) ([]dispatch.OfferView, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT o.id, o.request_id, r.service_type, r.lat, r.lng, r.address, r.province, r.district,
			o.distance_m, o.eta_seconds, o.expires_at
		FROM offers o JOIN requests r ON r.id = o.request_id
		WHERE o.driver_id = ? AND o.status = 'open' AND o.expires_at > ? ORDER BY o.created_at, o.id`, driverID, toMicros(now))
	if err != nil {
		return nil, fmt.Errorf("read offers: %w", err)
	}
	defer rows.Close()
	out := []dispatch.OfferView{}
	for rows.Next() {
		var v dispatch.OfferView
		var service string
		var expires int64
		if err := rows.Scan(&v.OfferID, &v.RequestID, &service, &v.Location.Lat, &v.Location.Lng, &v.Location.Address,
			&v.Location.Province, &v.Location.District, &v.DistanceM, &v.ETASeconds, &expires); err != nil {
			return nil, fmt.Errorf("scan offer: %w", err)
		}
		v.ServiceType, v.ExpiresAt = intake.ServiceType(service), fromMicros(expires)
		out = append(out, v)
	}
	return out, rows.Err()
}

// OfferedTo implements dispatch.Store and intake.OfferLookup.
func (s *Store) OfferedTo(ctx context.Context, requestID, driverID string) (bool, error) {
	var n int
	if err := s.read.QueryRowContext(ctx, `SELECT count(*) FROM offers WHERE request_id = ? AND driver_id = ? AND status = 'open'`,
		requestID, driverID).Scan(&n); err != nil {
		return false, fmt.Errorf("read offers: %w", err)
	}
	return n > 0, nil
}
