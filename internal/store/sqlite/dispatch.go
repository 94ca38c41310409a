package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/yolda/yolda/internal/dispatch"
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

func marks(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

func anyArgs(ids []string) []any {
	out := make([]any, len(ids))
	for i, v := range ids {
		out[i] = v
	}
	return out
}

// Snapshots implements dispatch.Store, from one read transaction.
func (s *Store) Snapshots(ctx context.Context, requestIDs []string) ([]dispatch.Snapshot, error) {
	if len(requestIDs) == 0 {
		return nil, nil
	}
	var out []dispatch.Snapshot
	err := s.readSnapshot(ctx, func(tx *sql.Tx) error {
		reqs, err := readRequests(ctx, tx, `WHERE id IN (`+marks(len(requestIDs))+`)`, anyArgs(requestIDs)...)
		if err != nil || len(reqs) == 0 {
			return err
		}
		out = make([]dispatch.Snapshot, len(reqs))
		byID := make(map[string]*dispatch.Snapshot, len(reqs))
		for i, r := range reqs {
			out[i].Request = r
			byID[r.ID] = &out[i]
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+offerColumns+` FROM offers WHERE request_id IN (`+marks(len(requestIDs))+`)
			ORDER BY request_id, created_at, id`, anyArgs(requestIDs)...)
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
	rows, err := s.read.QueryContext(ctx, `SELECT d.user_id FROM drivers d WHERE d.user_id IN (`+marks(len(driverIDs))+`) AND `+freeDriverCond,
		anyArgs(driverIDs)...)
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
	return s.tx(ctx, func(tx *sql.Tx) error {
		// Prepared once per batch: SQLite would otherwise parse each
		// statement again for every decision.
		var st decisionStmts
		defer st.close()
		for _, q := range []struct {
			dst **sql.Stmt
			sql string
		}{{&st.check, checkDecisionSQL}, {&st.receipt, checkReceiptSQL}, {&st.offer, insertOfferSQL}, {&st.outbox, insertOutboxSQL}} {
			var err error
			if *q.dst, err = tx.PrepareContext(ctx, q.sql); err != nil {
				return fmt.Errorf("prepare: %w", err)
			}
		}
		for _, d := range ds {
			err := s.commitDecision(ctx, tx, &st, d)
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

// decisionStmts are CommitDecisions' statements, prepared in its
// transaction.
type decisionStmts struct{ check, receipt, offer, outbox *sql.Stmt }

func (st *decisionStmts) close() {
	for _, s := range []*sql.Stmt{st.check, st.receipt, st.offer, st.outbox} {
		if s != nil {
			s.Close()
		}
	}
}

const (
	checkDecisionSQL = `SELECT version, (SELECT count(*) FROM offers WHERE request_id = r.id) FROM requests r WHERE r.id = ?`
	checkReceiptSQL  = `SELECT count(*) FROM processed_messages WHERE consumer = ? AND message_id = ?`
)

func (s *Store) commitDecision(ctx context.Context, tx *sql.Tx, st *decisionStmts, d *dispatch.Decision) error {
	var version, offers int
	err := st.check.QueryRowContext(ctx, d.RequestID).Scan(&version, &offers)
	if errors.Is(err, sql.ErrNoRows) || err == nil && (version != d.Version || offers != d.Offers) {
		return dispatch.ErrStale
	}
	if err != nil {
		return fmt.Errorf("check request %s: %w", d.RequestID, err)
	}
	if rc := d.Change.Receipt; rc != nil {
		var seen int
		if err := st.receipt.QueryRowContext(ctx, rc.Consumer, rc.MessageID).Scan(&seen); err != nil {
			return fmt.Errorf("check receipt: %w", err)
		}
		if seen > 0 {
			return outbox.ErrAlreadyProcessed
		}
	}
	if o := d.Offer; o != nil {
		res, err := st.offer.ExecContext(ctx, append(offerArgs(o), o.DriverID)...)
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
		// writeChange writes the outbox rows too.
		if err := writeChange(ctx, tx, r, d.Version, d.Change); err != nil {
			return err
		}
	} else if err := writeOutbox(ctx, st.outbox, d.Change.Outbox); err != nil {
		return err
	}
	if rc := d.Change.Receipt; rc != nil {
		if err := recordReceipt(ctx, tx, *rc, time.Now()); err != nil {
			return err
		}
	}
	return nil
}

// writeOutbox inserts msgs with the prepared insertOutboxSQL.
func writeOutbox(ctx context.Context, stmt *sql.Stmt, msgs []outbox.Message) error {
	for _, m := range msgs {
		if _, err := stmt.ExecContext(ctx, m.ID, m.Subject, m.Payload, toMicros(m.CreatedAt)); err != nil {
			return fmt.Errorf("insert outbox %s: %w", m.Subject, err)
		}
	}
	return nil
}

// readRequest reads one request in tx, with its timeline.
func readRequest(ctx context.Context, tx *sql.Tx, id string) (intake.Request, error) {
	found, err := readRequests(ctx, tx, `WHERE id = ?`, id)
	if err != nil {
		return intake.Request{}, err
	}
	if len(found) == 0 {
		return intake.Request{}, intake.ErrNotFound
	}
	return found[0], nil
}

func readOffer(ctx context.Context, tx *sql.Tx, offerID string) (dispatch.Offer, error) {
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
func endOffer(ctx context.Context, tx *sql.Tx, o *dispatch.Offer) error {
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
	err := s.tx(ctx, func(tx *sql.Tx) error {
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
		err = tx.QueryRowContext(ctx, `SELECT u.id, u.name, d.vehicle_plate FROM users u JOIN drivers d ON d.user_id = u.id
			WHERE u.id = ? AND u.role = 'driver'`, driverID).Scan(&a.Driver.ID, &a.Driver.Name, &a.Driver.VehiclePlate)
		if errors.Is(err, sql.ErrNoRows) {
			return dispatch.ErrUnknownDriver
		}
		if err != nil {
			return fmt.Errorf("read driver: %w", err)
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
	err := s.tx(ctx, func(tx *sql.Tx) error {
		o, err := readOffer(ctx, tx, offerID)
		if err != nil {
			return err
		}
		r, err := readRequest(ctx, tx, o.RequestID)
		if err != nil {
			return err
		}
		msgs, err := fn(&o, &r)
		if err != nil {
			return err
		}
		if err := endOffer(ctx, tx, &o); err != nil {
			return err
		}
		if err := insertOutbox(ctx, tx, msgs); err != nil {
			return err
		}
		out = o
		return nil
	})
	return out, err
}

// ExpireOffers implements dispatch.Store. One writer: nothing to skip.
func (s *Store) ExpireOffers(ctx context.Context, now time.Time, limit int, fn func(o *dispatch.Offer, r *intake.Request) ([]outbox.Message, error)) ([]dispatch.Offer, error) {
	var out []dispatch.Offer
	err := s.tx(ctx, func(tx *sql.Tx) error {
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
		for _, o := range due {
			r, err := readRequest(ctx, tx, o.RequestID)
			if err != nil {
				return err
			}
			msgs, err := fn(&o, &r)
			if err != nil {
				return err
			}
			if err := endOffer(ctx, tx, &o); err != nil {
				return err
			}
			if err := insertOutbox(ctx, tx, msgs); err != nil {
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
