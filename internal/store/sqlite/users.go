package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/identity"
)

// CreateUser implements account.Store.
func (s *Store) CreateUser(ctx context.Context, u account.User) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO users (id, username, role, name, phone, password_hash, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			u.ID, u.Username, string(u.Role), u.Name, u.Phone, u.PasswordHash, toMicros(u.CreatedAt))
		if err != nil {
			if strings.Contains(err.Error(), "UNIQUE constraint failed: users.username") {
				return account.ErrUsernameTaken
			}
			return fmt.Errorf("insert user: %w", err)
		}
		if u.Driver == nil {
			return nil
		}
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
		return nil
	})
}

// UserByUsername implements account.Store.
func (s *Store) UserByUsername(ctx context.Context, username string) (account.User, error) {
	var (
		u         account.User
		role      string
		createdAt int64
		plate     sql.NullString
		kind      sql.NullString
		caps      sql.NullString
		provider  sql.NullString
	)
	err := s.read.QueryRowContext(ctx, `SELECT u.id, u.username, u.role, u.name, u.phone, u.password_hash, u.created_at,
			d.vehicle_plate, d.vehicle_kind, d.capabilities, d.provider_code
		FROM users u LEFT JOIN drivers d ON d.user_id = u.id
		WHERE u.username = ?`, username).
		Scan(&u.ID, &u.Username, &role, &u.Name, &u.Phone, &u.PasswordHash, &createdAt, &plate, &kind, &caps, &provider)
	if errors.Is(err, sql.ErrNoRows) {
		return account.User{}, account.ErrNotFound
	}
	if err != nil {
		return account.User{}, fmt.Errorf("read user: %w", err)
	}
	u.Role = identity.Role(role)
	u.CreatedAt = fromMicros(createdAt)
	if plate.Valid {
		u.Driver = &account.DriverProfile{VehiclePlate: plate.String, VehicleKind: fleet.VehicleKind(kind.String), ProviderCode: provider.String}
		if err := json.Unmarshal([]byte(caps.String), &u.Driver.Capabilities); err != nil {
			return account.User{}, fmt.Errorf("decode capabilities: %w", err)
		}
	}
	return u, nil
}
