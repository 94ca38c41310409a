package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/audit"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
)

// CreateUser implements account.Store: the user, its driver profile and
// its events in one implicit transaction, one round trip.
func (s *Store) CreateUser(ctx context.Context, u account.User, events ...audit.Event) error {
	b := &pgx.Batch{}
	updated := u.UpdatedAt
	if updated.IsZero() {
		updated = u.CreatedAt
	}
	b.Queue(`INSERT INTO users (id, username, role, name, phone, password_hash, disabled, token_version, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		u.ID, u.Username, string(u.Role), u.Name, u.Phone, u.PasswordHash, u.Disabled, u.TokenVersion, u.CreatedAt, updated)
	if d := u.Driver; d != nil {
		caps := make([]string, len(d.Capabilities))
		for i, c := range d.Capabilities {
			caps[i] = string(c)
		}
		var provider *string
		if d.ProviderCode != "" {
			provider = &d.ProviderCode
		}
		b.Queue(`INSERT INTO drivers (user_id, vehicle_plate, vehicle_kind, capabilities, provider_code, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6)`,
			u.ID, d.VehiclePlate, string(d.VehicleKind), caps, provider, u.CreatedAt)
	}
	queueAudit(b, events)
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		if isUniqueViolation(err, "users_username_key") {
			return account.ErrUsernameTaken
		}
		if isForeignKeyViolation(err, "drivers_provider_code_fkey") {
			return fleet.ErrUnknownProvider
		}
		return fmt.Errorf("insert user: %w", err)
	}
	return nil
}

const userColumns = `u.id, u.username, u.role, u.name, u.phone, u.password_hash, u.disabled, u.token_version,
	u.created_at, u.updated_at, d.vehicle_plate, d.vehicle_kind, d.capabilities, d.provider_code
	FROM users u LEFT JOIN drivers d ON d.user_id = u.id`

func scanUser(row pgx.Row) (account.User, error) {
	var (
		u        account.User
		role     string
		plate    *string
		kind     *string
		caps     []string
		provider *string
	)
	err := row.Scan(&u.ID, &u.Username, &role, &u.Name, &u.Phone, &u.PasswordHash, &u.Disabled, &u.TokenVersion,
		&u.CreatedAt, &u.UpdatedAt, &plate, &kind, &caps, &provider)
	if errors.Is(err, pgx.ErrNoRows) {
		return account.User{}, account.ErrNotFound
	}
	if err != nil {
		return account.User{}, fmt.Errorf("read user: %w", err)
	}
	u.Role = identity.Role(role)
	u.CreatedAt, u.UpdatedAt = utc(u.CreatedAt), utc(u.UpdatedAt)
	if plate != nil {
		u.Driver = &account.DriverProfile{VehiclePlate: *plate, VehicleKind: fleet.VehicleKind(deref(kind)), ProviderCode: deref(provider)}
		for _, c := range caps {
			u.Driver.Capabilities = append(u.Driver.Capabilities, intake.ServiceType(c))
		}
	}
	return u, nil
}

// UserByUsername implements account.Store.
func (s *Store) UserByUsername(ctx context.Context, username string) (account.User, error) {
	return scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` WHERE u.username = $1`, username))
}

// UserByID implements account.Store.
func (s *Store) UserByID(ctx context.Context, id string) (account.User, error) {
	return scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` WHERE u.id = $1`, id))
}

// Users implements account.Store.
func (s *Store) Users(ctx context.Context, f account.UserFilter) ([]account.User, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.Role != "" {
		add("u.role = ?", string(f.Role))
	}
	if f.Disabled != nil {
		add("u.disabled = ?", *f.Disabled)
	}
	if f.Before != "" {
		add("u.id < ?", f.Before)
	}
	q := `SELECT ` + userColumns
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, f.Limit)
	q += " ORDER BY u.id DESC LIMIT $" + strconv.Itoa(len(args))
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []account.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// UpdateUser implements account.Store: the row is locked (FOR UPDATE OF
// u) for the read, the change and its events.
func (s *Store) UpdateUser(ctx context.Context, id string, fn func(*account.User) ([]audit.Event, error)) (account.User, error) {
	var out account.User
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		u, err := scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` WHERE u.id = $1 FOR UPDATE OF u`, id))
		if err != nil {
			return err
		}
		events, err := fn(&u)
		if err != nil {
			return err
		}
		b := &pgx.Batch{}
		b.Queue(`UPDATE users SET role = $1, disabled = $2, password_hash = $3, token_version = $4, updated_at = $5 WHERE id = $6`,
			string(u.Role), u.Disabled, u.PasswordHash, u.TokenVersion, u.UpdatedAt, id)
		queueAudit(b, events)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("update user: %w", err)
		}
		out = u
		return nil
	})
	return out, err
}
