// Package account manages who may log in: users, their roles, their
// password hashes, and the driver profile that comes with the driver role.
// Tokens are not made here (see internal/auth); positions and availability
// of drivers belong to the fleet.
package account

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/id"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/validate"
)

var (
	// ErrNotFound: no user of that name or id.
	ErrNotFound = errors.New("user not found")
	// ErrUsernameTaken: the username is already in use.
	ErrUsernameTaken = errors.New("username taken")
	// ErrBadCredentials: unknown user or wrong password; callers must not
	// tell the two apart.
	ErrBadCredentials = errors.New("bad credentials")
)

// User is an account.
type User struct {
	ID           string
	Username     string
	Role         identity.Role
	Name         string
	Phone        string
	PasswordHash string
	CreatedAt    time.Time
	// Driver is set for accounts with the driver role.
	Driver *DriverProfile
}

// DriverProfile is what a driver account adds: the vehicle, what it can do
// (consistent with the vehicle: fleet.ValidateProfile), and the provider
// the driver works for, if any.
type DriverProfile struct {
	VehiclePlate string
	VehicleKind  fleet.VehicleKind
	Capabilities []intake.ServiceType
	ProviderCode string
}

// Store keeps accounts; every SQL store implements it.
type Store interface {
	// CreateUser inserts the user (and its driver profile, in the same
	// transaction). A taken username is ErrUsernameTaken, a provider code
	// that names no provider fleet.ErrUnknownProvider.
	CreateUser(ctx context.Context, u User) error
	// UserByUsername returns the user or ErrNotFound.
	UserByUsername(ctx context.Context, username string) (User, error)
}

// NewUser is what `yolda users add` and an admin API provide.
type NewUser struct {
	Username     string
	Password     string
	Role         identity.Role
	Name         string
	Phone        string
	VehiclePlate string
	Capabilities []string
	// VehicleKind defaults to fleet.DefaultKind of the capabilities.
	VehicleKind string
	// Provider is the code of the provider a driver works for.
	Provider string
}

var usernameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]{2,63}$`)

// Service is the account use cases.
type Service struct {
	store  Store
	hasher *Hasher
	now    func() time.Time
	// dummyHash is checked when the user does not exist, so that a login
	// for an unknown name costs what a login for a known one does.
	dummyHash string
}

// NewService returns an account service over store.
func NewService(store Store, hasher *Hasher) (*Service, error) {
	dummy, err := hasher.Hash("not-a-password")
	if err != nil {
		return nil, err
	}
	return &Service{store: store, hasher: hasher, now: time.Now, dummyHash: dummy}, nil
}

// Add validates and creates an account.
func (s *Service) Add(ctx context.Context, n NewUser) (User, error) {
	var errs validate.Errors
	username := strings.ToLower(strings.TrimSpace(n.Username))
	if !usernameRe.MatchString(username) {
		errs.Add("username", "must be 3-64 characters: lower-case letters, digits, '.', '_', '@' or '-'")
	}
	if l := len(n.Password); l < 8 || l > 256 {
		errs.Add("password", "must be 8-256 characters")
	}
	if !n.Role.Valid() {
		errs.Add("role", "must be one of customer, driver, operator, admin")
	}
	u := User{
		Username: username,
		Role:     n.Role,
		Name:     errs.Text("name", n.Name, false, 120),
		Phone:    errs.Text("phone", n.Phone, false, 20),
	}
	if n.Role == identity.Driver {
		p := &DriverProfile{VehiclePlate: strings.ToUpper(errs.Text("vehicle_plate", n.VehiclePlate, true, 16))}
		for _, c := range n.Capabilities {
			st := intake.ServiceType(strings.TrimSpace(c))
			validate.OneOf(&errs, "capabilities", st, intake.ServiceTypes)
			p.Capabilities = append(p.Capabilities, st)
		}
		if len(p.Capabilities) == 0 {
			errs.Add("capabilities", "a driver needs at least one capability")
		}
		p.VehicleKind = fleet.VehicleKind(strings.TrimSpace(n.VehicleKind))
		if p.VehicleKind == "" {
			p.VehicleKind = fleet.DefaultKind(p.Capabilities)
		}
		fleet.ValidateProfile(&errs, p.VehicleKind, p.Capabilities)
		if p.ProviderCode = strings.TrimSpace(n.Provider); p.ProviderCode != "" && !fleet.ValidProviderCode(p.ProviderCode) {
			errs.Add("provider", "is not a provider code")
		}
		u.Driver = p
	} else if n.VehiclePlate != "" || len(n.Capabilities) > 0 || n.VehicleKind != "" || n.Provider != "" {
		errs.Add("role", "only drivers have a vehicle, capabilities and a provider")
	}
	if err := errs.Err(); err != nil {
		return User{}, err
	}
	hash, err := s.hasher.Hash(n.Password)
	if err != nil {
		return User{}, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	u.ID = id.New("usr", now)
	u.PasswordHash = hash
	u.CreatedAt = now
	if err := s.store.CreateUser(ctx, u); err != nil {
		if errors.Is(err, fleet.ErrUnknownProvider) {
			return User{}, validate.Errors{{Field: "provider", Message: "no provider has this code"}}
		}
		return User{}, fmt.Errorf("add user %s: %w", username, err)
	}
	return u, nil
}

// Authenticate returns the user whose password matches, or
// ErrBadCredentials.
func (s *Service) Authenticate(ctx context.Context, username, password string) (User, error) {
	u, err := s.store.UserByUsername(ctx, strings.ToLower(strings.TrimSpace(username)))
	if errors.Is(err, ErrNotFound) {
		_, _ = s.hasher.Verify(s.dummyHash, password)
		return User{}, ErrBadCredentials
	}
	if err != nil {
		return User{}, fmt.Errorf("authenticate: %w", err)
	}
	ok, err := s.hasher.Verify(u.PasswordHash, password)
	if err != nil {
		return User{}, fmt.Errorf("authenticate %s: %w", u.Username, err)
	}
	if !ok {
		return User{}, ErrBadCredentials
	}
	return u, nil
}
