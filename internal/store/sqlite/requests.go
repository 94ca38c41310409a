package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/yolda/yolda/internal/intake"
)

const requestColumns = `id, owner_id, status, service_type, lat, lng, address, province, district,
	dest_lat, dest_lng, dest_address, dest_province, dest_district,
	vehicle_plate, vehicle_make, vehicle_model, vehicle_type, insurer, policy_number,
	contact_name, contact_phone, notes,
	insurance_status, insurance_checked_at, insurance_reason, insurance_coverage, insurance_reference, insurance_flags,
	driver_id, driver_name, driver_plate, assigned_at, eta_seconds,
	created_at, updated_at, version`

// CreateRequests implements intake.Store: the whole batch in one
// transaction, idempotency decided by the primary key of idempotency_keys.
func (s *Store) CreateRequests(ctx context.Context, batch []*intake.Creation) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		insertReq, err := tx.PrepareContext(ctx, `INSERT INTO requests (`+requestColumns+`)
			VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`)
		if err != nil {
			return fmt.Errorf("prepare insert request: %w", err)
		}
		defer insertReq.Close()
		// Prepared once per batch: SQLite would otherwise parse each
		// statement again for every row.
		insertTL, err := tx.PrepareContext(ctx, insertTimelineSQL)
		if err != nil {
			return fmt.Errorf("prepare insert timeline: %w", err)
		}
		defer insertTL.Close()
		insertMsg, err := tx.PrepareContext(ctx, insertOutboxSQL)
		if err != nil {
			return fmt.Errorf("prepare insert outbox: %w", err)
		}
		defer insertMsg.Close()
		for _, c := range batch {
			c.ReplayOf, c.Err = "", nil
			r := &c.Request
			if c.IdempotencyKey != "" {
				claimed, err := claimKey(ctx, tx, c)
				if err != nil {
					return err
				}
				if !claimed {
					continue
				}
			}
			if _, err := insertReq.ExecContext(ctx, requestArgs(r)...); err != nil {
				return fmt.Errorf("insert request %s: %w", r.ID, err)
			}
			for i, e := range r.Timeline {
				if _, err := insertTL.ExecContext(ctx, r.ID, i+1, string(e.Status), toMicros(e.At), e.ActorID, e.Reason); err != nil {
					return fmt.Errorf("insert timeline: %w", err)
				}
			}
			for _, m := range c.Outbox {
				if _, err := insertMsg.ExecContext(ctx, m.ID, m.Subject, m.Payload, toMicros(m.CreatedAt)); err != nil {
					return fmt.Errorf("insert outbox %s: %w", m.Subject, err)
				}
			}
		}
		return nil
	})
}

// claimKey records c's idempotency key and reports whether c may be
// inserted. If the key was taken, it sets c.ReplayOf or c.Err.
func claimKey(ctx context.Context, tx *sql.Tx, c *intake.Creation) (bool, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO idempotency_keys (owner_id, key, fingerprint, request_id, created_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		c.Request.OwnerID, c.IdempotencyKey, c.Fingerprint, c.Request.ID, toMicros(c.Request.CreatedAt))
	if err != nil {
		return false, fmt.Errorf("claim idempotency key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return true, nil
	}
	var fingerprint, requestID string
	if err := tx.QueryRowContext(ctx, `SELECT fingerprint, request_id FROM idempotency_keys WHERE owner_id = ? AND key = ?`,
		c.Request.OwnerID, c.IdempotencyKey).Scan(&fingerprint, &requestID); err != nil {
		return false, fmt.Errorf("read idempotency key: %w", err)
	}
	if fingerprint != c.Fingerprint {
		c.Err = intake.ErrIdempotencyMismatch
	} else {
		c.ReplayOf = requestID
	}
	return false, nil
}

func requestArgs(r *intake.Request) []any {
	var dLat, dLng sql.NullFloat64
	var dAddr, dProv, dDist sql.NullString
	if d := r.Destination; d != nil {
		dLat, dLng = sql.NullFloat64{Float64: d.Lat, Valid: true}, sql.NullFloat64{Float64: d.Lng, Valid: true}
		dAddr, dProv, dDist = nullString(&d.Address), nullString(&d.Province), nullString(&d.District)
	}
	var coverage sql.NullString
	if len(r.Insurance.Coverage) > 0 {
		coverage = sql.NullString{String: string(r.Insurance.Coverage), Valid: true}
	}
	var driverID, driverName, driverPlate sql.NullString
	var assignedAt, eta sql.NullInt64
	if a := r.Assignment; a != nil {
		driverID, driverName, driverPlate = nullString(&a.DriverID), nullString(&a.DriverName), nullString(&a.VehiclePlate)
		assignedAt = nullMicros(&a.AssignedAt)
		eta = sql.NullInt64{Int64: int64(a.ETASeconds), Valid: true}
	}
	return []any{
		r.ID, r.OwnerID, string(r.Status), string(r.ServiceType),
		r.Location.Lat, r.Location.Lng, r.Location.Address, r.Location.Province, r.Location.District,
		dLat, dLng, dAddr, dProv, dDist,
		r.Vehicle.Plate, r.Vehicle.Make, r.Vehicle.Model, string(r.Vehicle.Type), r.Policy.Insurer, r.Policy.PolicyNumber,
		r.Contact.Name, r.Contact.Phone, r.Notes,
		string(r.Insurance.Status), nullMicros(r.Insurance.CheckedAt), nullString(r.Insurance.Reason), coverage, nullString(r.Insurance.Reference), flagsArg(r.Insurance.Flags),
		driverID, driverName, driverPlate, assignedAt, eta,
		toMicros(r.CreatedAt), toMicros(r.UpdatedAt), r.Version,
	}
}

// flagsArg stores flags as a JSON array.
func flagsArg(flags []string) string {
	if len(flags) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(flags) // strings always encode
	return string(b)
}

func nullString(s *string) sql.NullString {
	if s == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: *s, Valid: true}
}

type rowScanner interface{ Scan(dest ...any) error }

func scanRequest(row rowScanner) (intake.Request, error) {
	var (
		r                                 intake.Request
		status, service, vtype, insStatus string
		dLat, dLng                        sql.NullFloat64
		dAddr, dProv, dDist               sql.NullString
		checkedAt, assignedAt, eta        sql.NullInt64
		reason, coverage, reference       sql.NullString
		driverID, driverName, driverPlate sql.NullString
		flags                             string
		createdAt, updatedAt              int64
	)
	err := row.Scan(&r.ID, &r.OwnerID, &status, &service,
		&r.Location.Lat, &r.Location.Lng, &r.Location.Address, &r.Location.Province, &r.Location.District,
		&dLat, &dLng, &dAddr, &dProv, &dDist,
		&r.Vehicle.Plate, &r.Vehicle.Make, &r.Vehicle.Model, &vtype, &r.Policy.Insurer, &r.Policy.PolicyNumber,
		&r.Contact.Name, &r.Contact.Phone, &r.Notes,
		&insStatus, &checkedAt, &reason, &coverage, &reference, &flags,
		&driverID, &driverName, &driverPlate, &assignedAt, &eta,
		&createdAt, &updatedAt, &r.Version)
	if err != nil {
		return intake.Request{}, err
	}
	r.Status = intake.Status(status)
	r.ServiceType = intake.ServiceType(service)
	r.Vehicle.Type = intake.VehicleType(vtype)
	if dLat.Valid {
		r.Destination = &intake.Location{Lat: dLat.Float64, Lng: dLng.Float64,
			Address: dAddr.String, Province: dProv.String, District: dDist.String}
	}
	r.Insurance.Status = intake.InsuranceStatus(insStatus)
	if checkedAt.Valid {
		t := fromMicros(checkedAt.Int64)
		r.Insurance.CheckedAt = &t
	}
	if reason.Valid {
		r.Insurance.Reason = &reason.String
	}
	if coverage.Valid {
		r.Insurance.Coverage = []byte(coverage.String)
	}
	if reference.Valid {
		r.Insurance.Reference = &reference.String
	}
	if err := json.Unmarshal([]byte(flags), &r.Insurance.Flags); err != nil {
		return intake.Request{}, fmt.Errorf("decode insurance flags: %w", err)
	}
	if driverID.Valid {
		r.Assignment = &intake.Assignment{DriverID: driverID.String, DriverName: driverName.String,
			VehiclePlate: driverPlate.String, AssignedAt: fromMicros(assignedAt.Int64), ETASeconds: int(eta.Int64)}
	}
	r.CreatedAt, r.UpdatedAt = fromMicros(createdAt), fromMicros(updatedAt)
	return r, nil
}

// Request implements intake.Store.
func (s *Store) Request(ctx context.Context, id string) (intake.Request, error) {
	r, err := scanRequest(s.read.QueryRowContext(ctx, `SELECT `+requestColumns+` FROM requests WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return intake.Request{}, intake.ErrNotFound
	}
	if err != nil {
		return intake.Request{}, fmt.Errorf("read request: %w", err)
	}
	if err := s.loadTimelines(ctx, s.read, []*intake.Request{&r}); err != nil {
		return intake.Request{}, err
	}
	return r, nil
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
		add("province = ?", f.Province)
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
	q := `SELECT ` + requestColumns + ` FROM requests`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, f.Limit)

	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	defer rows.Close()
	var out []intake.Request
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, fmt.Errorf("scan request: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	ptrs := make([]*intake.Request, len(out))
	for i := range out {
		ptrs[i] = &out[i]
	}
	if err := s.loadTimelines(ctx, s.read, ptrs); err != nil {
		return nil, err
	}
	return out, nil
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// loadTimelines fills the timeline of every request with one query.
func (s *Store) loadTimelines(ctx context.Context, q querier, reqs []*intake.Request) error {
	if len(reqs) == 0 {
		return nil
	}
	byID := make(map[string]*intake.Request, len(reqs))
	args := make([]any, len(reqs))
	for i, r := range reqs {
		byID[r.ID] = r
		r.Timeline = r.Timeline[:0]
		args[i] = r.ID
	}
	marks := strings.TrimSuffix(strings.Repeat("?,", len(reqs)), ",")
	rows, err := q.QueryContext(ctx, `SELECT request_id, status, at, actor_id, reason FROM request_timeline
		WHERE request_id IN (`+marks+`) ORDER BY request_id, seq`, args...)
	if err != nil {
		return fmt.Errorf("read timelines: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var reqID, status string
		var e intake.TimelineEntry
		var at int64
		if err := rows.Scan(&reqID, &status, &at, &e.ActorID, &e.Reason); err != nil {
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
	err := s.tx(ctx, func(tx *sql.Tx) error {
		r, err := scanRequest(tx.QueryRowContext(ctx, `SELECT `+requestColumns+` FROM requests WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return intake.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("read request: %w", err)
		}
		if err := s.loadTimelines(ctx, tx, []*intake.Request{&r}); err != nil {
			return err
		}
		change, err := fn(&r)
		if err != nil {
			return err
		}
		if change.Receipt != nil {
			if err := recordReceipt(ctx, tx, *change.Receipt, r.UpdatedAt); err != nil {
				return err
			}
		}
		r.Version++
		args := requestArgs(&r)
		// requestArgs is in column order; UPDATE sets every column but id.
		cols := strings.Split(requestColumns, ",")
		sets := make([]string, 0, len(cols)-1)
		for _, c := range cols[1:] {
			sets = append(sets, strings.TrimSpace(c)+" = ?")
		}
		if _, err := tx.ExecContext(ctx, `UPDATE requests SET `+strings.Join(sets, ", ")+` WHERE id = ?`,
			append(args[1:], r.ID)...); err != nil {
			return fmt.Errorf("update request: %w", err)
		}
		if e := change.Timeline; e != nil {
			if err := insertTimeline(ctx, tx, r.ID, len(r.Timeline)+1, *e); err != nil {
				return err
			}
			r.Timeline = append(r.Timeline, *e)
		}
		if err := insertOutbox(ctx, tx, change.Outbox); err != nil {
			return err
		}
		out = r
		return nil
	})
	return out, err
}

const insertTimelineSQL = `INSERT INTO request_timeline (request_id, seq, status, at, actor_id, reason) VALUES (?, ?, ?, ?, ?, ?)`

func insertTimeline(ctx context.Context, tx *sql.Tx, requestID string, seq int, e intake.TimelineEntry) error {
	if _, err := tx.ExecContext(ctx, insertTimelineSQL, requestID, seq, string(e.Status), toMicros(e.At), e.ActorID, e.Reason); err != nil {
		return fmt.Errorf("insert timeline: %w", err)
	}
	return nil
}
