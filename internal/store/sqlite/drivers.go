package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/yolda/yolda/internal/fleet"
)

var _ fleet.Store = (*Store)(nil)

// CreateProvider implements fleet.Store.
func (s *Store) CreateProvider(ctx context.Context, p fleet.Provider) error {
	return s.tx(ctx, func(tx *txn) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO providers (code, name, created_at) VALUES (?, ?, ?)`,
			p.Code, p.Name, toMicros(p.CreatedAt))
		if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed: providers.code") {
			return fleet.ErrProviderExists
		}
		if err != nil {
			return fmt.Errorf("insert provider: %w", err)
		}
		return nil
	})
}

// Providers implements fleet.Store.
func (s *Store) Providers(ctx context.Context) ([]fleet.Provider, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT code, name, created_at FROM providers ORDER BY code`)
	if err != nil {
		return nil, fmt.Errorf("list providers: %w", err)
	}
	defer rows.Close()
	var out []fleet.Provider
	for rows.Next() {
		var p fleet.Provider
		var at int64
		if err := rows.Scan(&p.Code, &p.Name, &at); err != nil {
			return nil, fmt.Errorf("read provider: %w", err)
		}
		p.CreatedAt = fromMicros(at)
		out = append(out, p)
	}
	return out, rows.Err()
}

// selectDriver reads drivers with their provider and their open job, if
// any (the statuses of requests_one_open_job_per_driver, so that the join
// uses that index).
const selectDriver = `SELECT u.id, u.username, u.name, d.vehicle_plate, d.vehicle_kind, d.capabilities,
		d.availability, d.state_version, d.updated_at, p.code, p.name, p.created_at, r.id
	FROM drivers d
	JOIN users u ON u.id = d.user_id
	LEFT JOIN providers p ON p.code = d.provider_code
	LEFT JOIN requests r ON r.driver_id = d.user_id
		AND r.status IN ('assigned', 'en_route', 'arrived', 'in_service')`

type scanner interface{ Scan(dest ...any) error }

func scanDriver(row scanner) (fleet.Driver, error) {
	var (
		d                        fleet.Driver
		kind, caps, avail        string
		updated                  int64
		pCode, pName, currentReq sql.NullString
		pCreated                 sql.NullInt64
	)
	if err := row.Scan(&d.ID, &d.Username, &d.Name, &d.VehiclePlate, &kind, &caps, &avail, &d.StateVersion, &updated,
		&pCode, &pName, &pCreated, &currentReq); err != nil {
		return fleet.Driver{}, err
	}
	if err := json.Unmarshal([]byte(caps), &d.Capabilities); err != nil {
		return fleet.Driver{}, fmt.Errorf("decode capabilities: %w", err)
	}
	d.VehicleKind = fleet.VehicleKind(kind)
	d.Availability = fleet.Availability(avail)
	d.UpdatedAt = fromMicros(updated)
	d.CurrentRequestID = currentReq.String
	if pCode.Valid {
		d.Provider = &fleet.Provider{Code: pCode.String, Name: pName.String, CreatedAt: fromMicros(pCreated.Int64)}
	}
	return d, nil
}

// Driver implements fleet.Store.
func (s *Store) Driver(ctx context.Context, id string) (fleet.Driver, error) {
	return driverByID(ctx, s.read, id)
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func driverByID(ctx context.Context, q queryer, id string) (fleet.Driver, error) {
	d, err := scanDriver(q.QueryRowContext(ctx, selectDriver+` WHERE d.user_id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return fleet.Driver{}, fleet.ErrNotFound
	}
	if err != nil {
		return fleet.Driver{}, fmt.Errorf("read driver: %w", err)
	}
	return d, nil
}

// Drivers implements fleet.Store.
func (s *Store) Drivers(ctx context.Context, f fleet.DriverFilter) ([]fleet.Driver, error) {
	q := selectDriver + ` WHERE d.user_id > ?`
	args := []any{f.After}
	if f.Availability != "" {
		q += ` AND d.availability = ?`
		args = append(args, string(f.Availability))
	}
	if f.Provider != "" {
		q += ` AND d.provider_code = ?`
		args = append(args, f.Provider)
	}
	if f.Capability != "" {
		q += ` AND EXISTS (SELECT 1 FROM json_each(d.capabilities) WHERE value = ?)`
		args = append(args, string(f.Capability))
	}
	q += ` ORDER BY d.user_id LIMIT ?`
	args = append(args, f.Limit)
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list drivers: %w", err)
	}
	defer rows.Close()
	var out []fleet.Driver
	for rows.Next() {
		d, err := scanDriver(rows)
		if err != nil {
			return nil, fmt.Errorf("read driver: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// SetAvailability implements fleet.Store.
func (s *Store) SetAvailability(ctx context.Context, id string, a fleet.Availability, at time.Time) (fleet.Driver, error) {
	return s.bumpDriver(ctx, id, `UPDATE drivers SET availability = ?, updated_at = ?, state_version = state_version + 1
		WHERE user_id = ?`, string(a), toMicros(at), id)
}

// TouchDriver implements fleet.Store.
func (s *Store) TouchDriver(ctx context.Context, id string) (fleet.Driver, error) {
	return s.bumpDriver(ctx, id, `UPDATE drivers SET state_version = state_version + 1 WHERE user_id = ?`, id)
}

// bumpDriver runs update (which increments state_version) and reads the
// driver back in the same transaction: the single writer orders versions
// as commits are ordered.
func (s *Store) bumpDriver(ctx context.Context, id, update string, args ...any) (fleet.Driver, error) {
	var d fleet.Driver
	err := s.tx(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, update, args...)
		if err != nil {
			return fmt.Errorf("update driver: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fleet.ErrNotFound
		}
		d, err = driverByID(ctx, tx, id)
		return err
	})
	return d, err
}
