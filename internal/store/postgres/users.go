package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
)

// CreateUser implements account.Store: the user and its driver profile in
// one implicit transaction, one round trip.
func (s *Store) CreateUser(ctx context.Context, u account.User) error {
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO users (id, username, role, name, phone, password_hash, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		u.ID, u.Username, string(u.Role), u.Name, u.Phone, u.PasswordHash, u.CreatedAt)
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

// UserByUsername implements account.Store.
func (s *Store) UserByUsername(ctx context.Context, username string) (account.User, error) {
	var (
		u        account.User
		role     string
		plate    *string
		kind     *string
		caps     []string
		provider *string
	)
	err := s.pool.QueryRow(ctx, `SELECT u.id, u.username, u.role, u.name, u.phone, u.password_hash, u.created_at,
			d.vehicle_plate, d.vehicle_kind, d.capabilities, d.provider_code
		FROM users u LEFT JOIN drivers d ON d.user_id = u.id
		WHERE u.username = $1`, username).
		Scan(&u.ID, &u.Username, &role, &u.Name, &u.Phone, &u.PasswordHash, &u.CreatedAt, &plate, &kind, &caps, &provider)
	if errors.Is(err, pgx.ErrNoRows) {
		return account.User{}, account.ErrNotFound
	}
	if err != nil {
		return account.User{}, fmt.Errorf("read user: %w", err)
	}
	u.Role = identity.Role(role)
	u.CreatedAt = utc(u.CreatedAt)
	if plate != nil {
		u.Driver = &account.DriverProfile{VehiclePlate: *plate, VehicleKind: fleet.VehicleKind(deref(kind)), ProviderCode: deref(provider)}
		for _, c := range caps {
			u.Driver.Capabilities = append(u.Driver.Capabilities, intake.ServiceType(c))
		}
	}
	return u, nil
}
