package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/intake"
)

var _ fleet.Store = (*Store)(nil)

func isForeignKeyViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23503" && pgErr.ConstraintName == constraint
}

// CreateProvider implements fleet.Store.
func (s *Store) CreateProvider(ctx context.Context, p fleet.Provider) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO providers (code, name, created_at) VALUES ($1, $2, $3)`, p.Code, p.Name, p.CreatedAt)
	if isUniqueViolation(err, "providers_pkey") {
		return fleet.ErrProviderExists
	}
	if err != nil {
		return fmt.Errorf("insert provider: %w", err)
	}
	return nil
}

// Providers implements fleet.Store.
func (s *Store) Providers(ctx context.Context) ([]fleet.Provider, error) {
	rows, err := s.pool.Query(ctx, `SELECT code, name, created_at FROM providers ORDER BY code`)
	if err != nil {
		return nil, fmt.Errorf("list providers: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (fleet.Provider, error) {
		var p fleet.Provider
		err := row.Scan(&p.Code, &p.Name, &p.CreatedAt)
		p.CreatedAt = utc(p.CreatedAt)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("read providers: %w", err)
	}
	return out, nil
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

func scanDriver(row pgx.Row) (fleet.Driver, error) {
	var (
		d                        fleet.Driver
		kind, avail              string
		caps                     []string
		pCode, pName, currentReq *string
		pCreated                 *time.Time
	)
	if err := row.Scan(&d.ID, &d.Username, &d.Name, &d.VehiclePlate, &kind, &caps, &avail, &d.StateVersion, &d.UpdatedAt,
		&pCode, &pName, &pCreated, &currentReq); err != nil {
		return fleet.Driver{}, err
	}
	for _, c := range caps {
		d.Capabilities = append(d.Capabilities, intake.ServiceType(c))
	}
	d.VehicleKind = fleet.VehicleKind(kind)
	d.Availability = fleet.Availability(avail)
	d.UpdatedAt = utc(d.UpdatedAt)
	d.CurrentRequestID = deref(currentReq)
	if pCode != nil {
		d.Provider = &fleet.Provider{Code: *pCode, Name: deref(pName), CreatedAt: utc(*pCreated)}
	}
	return d, nil
}

type rowQueryer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func driverByID(ctx context.Context, q rowQueryer, id string) (fleet.Driver, error) {
	d, err := scanDriver(q.QueryRow(ctx, selectDriver+` WHERE d.user_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return fleet.Driver{}, fleet.ErrNotFound
	}
	if err != nil {
		return fleet.Driver{}, fmt.Errorf("read driver: %w", err)
	}
	return d, nil
}

// Driver implements fleet.Store.
func (s *Store) Driver(ctx context.Context, id string) (fleet.Driver, error) {
	return driverByID(ctx, s.pool, id)
}

// Drivers implements fleet.Store.
func (s *Store) Drivers(ctx context.Context, f fleet.DriverFilter) ([]fleet.Driver, error) {
	rows, err := s.pool.Query(ctx, selectDriver+` WHERE d.user_id > $1
		AND ($2 = '' OR d.availability = $2)
		AND ($3 = '' OR d.provider_code = $3)
		AND ($4 = '' OR $4 = ANY (d.capabilities))
		ORDER BY d.user_id LIMIT $5`,
		f.After, string(f.Availability), f.Provider, string(f.Capability), f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list drivers: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (fleet.Driver, error) { return scanDriver(row) })
	if err != nil {
		return nil, fmt.Errorf("read drivers: %w", err)
	}
	return out, nil
}

// SetAvailability implements fleet.Store.
func (s *Store) SetAvailability(ctx context.Context, id string, a fleet.Availability, at time.Time) (fleet.Driver, error) {
	return s.bumpDriver(ctx, id, `UPDATE drivers SET availability = $2, updated_at = $3, state_version = state_version + 1
		WHERE user_id = $1`, id, string(a), at)
}

// TouchDriver implements fleet.Store.
func (s *Store) TouchDriver(ctx context.Context, id string) (fleet.Driver, error) {
	return s.bumpDriver(ctx, id, `UPDATE drivers SET state_version = state_version + 1 WHERE user_id = $1`, id)
}

// bumpDriver runs update (which increments state_version) and reads the
// driver back in the same transaction. The row lock orders the versions as
// the commits, and the read after the update sees every commit before it,
// so a higher version is never an older picture.
func (s *Store) bumpDriver(ctx context.Context, id, update string, args ...any) (fleet.Driver, error) {
	var d fleet.Driver
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, update, args...)
		if err != nil {
			return fmt.Errorf("update driver: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fleet.ErrNotFound
		}
		d, err = driverByID(ctx, tx, id)
		return err
	})
	return d, err
}
