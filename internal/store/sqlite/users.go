package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/audit"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/identity"
)

var _ account.Store = (*Store)(nil)

// CreateUser implements account.Store.
func (s *Store) CreateUser(ctx context.Context, u account.User, events ...audit.Event) error {
	return s.tx(ctx, func(tx *txn) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO users (id, username, role, name, phone, password_hash, disabled, token_version, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			u.ID, u.Username, string(u.Role), u.Name, u.Phone, u.PasswordHash, u.Disabled, u.TokenVersion,
			toMicros(u.CreatedAt), toMicros(updatedOrCreated(u)))
		if err != nil {
			if strings.Contains(err.Error(), "UNIQUE constraint failed: users.username") {
				return account.ErrUsernameTaken
			}
			return fmt.Errorf("insert user: %w", err)
		}
		if u.Driver != nil {
			caps, err := json.Marshal(u.Driver.Capabilities)
			if err != nil {
				return fmt.Errorf("encode capabilities: %w", err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO drivers (user_id, vehicle_plate, vehicle_kind, capabilities, provider_code, updated_at)
				VALUES (?, ?, ?, ?, ?, ?)`, u.ID, u.Driver.VehiclePlate, string(u.Driver.VehicleKind), string(caps),
				sql.NullString{String: u.Driver.ProviderCode, Valid: u.Driver.ProviderCode != ""}, toMicros(u.CreatedAt)); err != nil {
				if strings.Contains(err.Error(), "FOREIGN KEY constraint failed") {
					return fleet.ErrUnknownProvider
				}
				return fmt.Errorf("insert driver: %w", err)
			}
		}
		return insertAudit(ctx, tx, events)
	})
}

// updatedOrCreated is when u last changed: a new user made without an
// UpdatedAt has not changed since it was created.
func updatedOrCreated(u account.User) time.Time {
	if u.UpdatedAt.IsZero() {
		return u.CreatedAt
	}
	return u.UpdatedAt
}

const userColumns = `u.id, u.username, u.role, u.name, u.phone, u.password_hash, u.disabled, u.token_version,
	u.created_at, u.updated_at, d.vehicle_plate, d.vehicle_kind, d.capabilities, d.provider_code
	FROM users u LEFT JOIN drivers d ON d.user_id = u.id`

func scanUser(row interface{ Scan(...any) error }) (account.User, error) {
	var (
		u                    account.User
		role                 string
		createdAt, updatedAt int64
		plate, kind          sql.NullString
		caps, provider       sql.NullString
	)
	if err := row.Scan(&u.ID, &u.Username, &role, &u.Name, &u.Phone, &u.PasswordHash, &u.Disabled, &u.TokenVersion,
		&createdAt, &updatedAt, &plate, &kind, &caps, &provider); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return account.User{}, account.ErrNotFound
		}
		return account.User{}, fmt.Errorf("read user: %w", err)
	}
	u.Role = identity.Role(role)
	u.CreatedAt = fromMicros(createdAt)
	u.UpdatedAt = fromMicros(updatedAt)
	if plate.Valid {
		u.Driver = &account.DriverProfile{VehiclePlate: plate.String, VehicleKind: fleet.VehicleKind(kind.String), ProviderCode: provider.String}
		if err := json.Unmarshal([]byte(caps.String), &u.Driver.Capabilities); err != nil {
			return account.User{}, fmt.Errorf("decode capabilities: %w", err)
		}
	}
	return u, nil
}

// UserByUsername implements account.Store.
func (s *Store) UserByUsername(ctx context.Context, username string) (account.User, error) {
	return scanUser(s.read.QueryRowContext(ctx, `SELECT `+userColumns+` WHERE u.username = ?`, username))
}

// UserByID implements account.Store.
func (s *Store) UserByID(ctx context.Context, id string) (account.User, error) {
	return scanUser(s.read.QueryRowContext(ctx, `SELECT `+userColumns+` WHERE u.id = ?`, id))
}

// Users implements account.Store.
func (s *Store) Users(ctx context.Context, f account.UserFilter) ([]account.User, error) {
	var where []string
	var args []any
	if f.Role != "" {
		where, args = append(where, "u.role = ?"), append(args, string(f.Role))
	}
	if f.Disabled != nil {
		where, args = append(where, "u.disabled = ?"), append(args, *f.Disabled)
	}
	if f.Before != "" {
		where, args = append(where, "u.id < ?"), append(args, f.Before)
	}
	q := `SELECT ` + userColumns
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY u.id DESC LIMIT ?"
	rows, err := s.read.QueryContext(ctx, q, append(args, f.Limit)...)
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

// UpdateUser implements account.Store. The write transaction is the lock:
// SQLite has one writer.
func (s *Store) UpdateUser(ctx context.Context, id string, fn func(*account.User) ([]audit.Event, error)) (account.User, error) {
	var out account.User
	err := s.tx(ctx, func(tx *txn) error {
		u, err := scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` WHERE u.id = ?`, id))
		if err != nil {
			return err
		}
		events, err := fn(&u)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE users SET role = ?, disabled = ?, password_hash = ?, token_version = ?, updated_at = ?
			WHERE id = ?`, string(u.Role), u.Disabled, u.PasswordHash, u.TokenVersion, toMicros(u.UpdatedAt), id); err != nil {
			return fmt.Errorf("update user: %w", err)
		}
		out = u
		return insertAudit(ctx, tx, events)
	})
	return out, err
}
