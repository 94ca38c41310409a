// Package account manages who may log in: users, their roles, their
// password hashes, and the driver profile that comes with the driver role.
// Tokens are not made here (see internal/auth); positions and availability
// of drivers belong to the fleet.
package account

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/audit"
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
	// ErrBadCredentials: unknown user, wrong password or disabled
	// account; callers must not tell them apart.
	ErrBadCredentials = errors.New("bad credentials")
	// ErrThrottled: too many failed logins for this account lately; the
	// error is a *ThrottledError saying when to try again.
	ErrThrottled = errors.New("login throttled")
	// ErrBusy: every password-hashing slot is taken; retry shortly.
	ErrBusy = errors.New("password hashing at capacity")
	// ErrTokenRefused: a validly signed token that no longer speaks for
	// anyone: its user is gone or disabled, its role changed, or its
	// tokens were revoked.
	ErrTokenRefused = errors.New("token refused")
	// ErrForbidden: the caller may not manage accounts.
	ErrForbidden = errors.New("not allowed to manage accounts")
	// ErrConflict: the change is not allowed in the account's state (an
	// admin demoting or disabling itself).
	ErrConflict = errors.New("account change not allowed")
)

// User is an account.
type User struct {
	ID           string
	Username     string
	Role         identity.Role
	Name         string
	Phone        string
	PasswordHash string
	// Disabled accounts cannot log in, and their tokens are refused.
	Disabled bool
	// TokenVersion is carried by every token issued to the user; raising
	// it revokes every token issued before.
	TokenVersion int64
	CreatedAt    time.Time
	UpdatedAt    time.Time
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
	// CreateUser inserts the user (and its driver profile) and events, in
	// one transaction. A taken username is ErrUsernameTaken, a provider
	// code that names no provider fleet.ErrUnknownProvider.
	CreateUser(ctx context.Context, u User, events ...audit.Event) error
	// UserByUsername returns the user or ErrNotFound.
	UserByUsername(ctx context.Context, username string) (User, error)
	// UserByID returns the user or ErrNotFound.
	UserByID(ctx context.Context, id string) (User, error)
	// Users returns up to f.Limit users matching f, newest first.
	Users(ctx context.Context, f UserFilter) ([]User, error)
	// UpdateUser reads the user, lets fn change it, and writes the change
	// with the audit events fn returns, in one transaction: an account
	// change is never without its trail. fn's error aborts the update and
	// is returned as is; a missing user is ErrNotFound. What is written:
	// role, disabled, password hash, token version and updated at.
	UpdateUser(ctx context.Context, id string, fn func(*User) ([]audit.Event, error)) (User, error)
}

// UserFilter selects users for a list. Zero fields match everything.
type UserFilter struct {
	Role     identity.Role
	Disabled *bool
	// Before is a user id: only older users are returned (the cursor).
	Before string
	Limit  int
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

// Service is the account use cases: creating and managing accounts,
// logging in, and saying who a token speaks for now.
type Service struct {
	store  Store
	hasher *Hasher
	gate   *hashGate
	tries  *backoff
	known  *principalCache
	audit  audit.Recorder
	now    func() time.Time
	log    *slog.Logger
	m      *metrics
	// dummyHash is checked when the user does not exist, so that a login
	// for an unknown name costs what a login for a known one does.
	dummyHash string
	refusals  *refusalLog
}

// Option tunes a Service.
type Option func(*options)

type options struct {
	audit        audit.Recorder
	now          func() time.Time
	log          *slog.Logger
	reg          prometheus.Registerer
	hashSlots    int
	hashWait     time.Duration
	release      func()
	backoff      BackoffRules
	principalTTL time.Duration
}

// WithAudit records logins and token refusals through r (account changes
// are written with the change itself).
func WithAudit(r audit.Recorder) Option { return func(o *options) { o.audit = r } }

// WithClock sets the clock (time.Now by default).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithMetrics registers the service's metrics on reg.
func WithMetrics(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

// WithHashLimit bounds concurrent password hashes to slots (0: derived
// from GOMAXPROCS and a memory budget, see DefaultHashSlots) and says how
// long a login waits for a slot before ErrBusy.
func WithHashLimit(slots int, wait time.Duration) Option {
	return func(o *options) { o.hashSlots, o.hashWait = slots, wait }
}

// WithMemoryRelease sets what runs when a burst of hashing is over
// (debug.FreeOSMemory by default); tests observe it.
func WithMemoryRelease(f func()) Option { return func(o *options) { o.release = f } }

// WithBackoff sets the failed-login rules (DefaultBackoff otherwise).
func WithBackoff(b BackoffRules) Option { return func(o *options) { o.backoff = b } }

// WithPrincipalCache sets how long a resolved principal is trusted
// before the store is asked again (DefaultPrincipalTTL otherwise). It
// bounds how long a change made by another process takes to bite.
func WithPrincipalCache(ttl time.Duration) Option { return func(o *options) { o.principalTTL = ttl } }

// NewService returns an account service over store.
func NewService(store Store, hasher *Hasher, opts ...Option) (*Service, error) {
	o := options{audit: audit.Discard{}, now: time.Now, log: slog.New(slog.DiscardHandler),
		hashWait: DefaultHashWait, release: debug.FreeOSMemory, backoff: DefaultBackoff, principalTTL: DefaultPrincipalTTL}
	for _, opt := range opts {
		opt(&o)
	}
	dummy, err := hasher.Hash("not-a-password")
	if err != nil {
		return nil, err
	}
	slots := o.hashSlots
	if slots <= 0 {
		slots = DefaultHashSlots(hasher.Memory)
	}
	m, err := newMetrics(o.reg)
	if err != nil {
		return nil, err
	}
	return &Service{
		store: store, hasher: hasher, audit: o.audit, now: o.now, log: o.log, m: m, dummyHash: dummy,
		gate:     newHashGate(slots, o.hashWait, o.release, m),
		tries:    newBackoff(o.backoff),
		known:    newPrincipalCache(o.principalTTL),
		refusals: newRefusalLog(),
	}, nil
}

// HashSlots is how many password hashes may run at once.
func (s *Service) HashSlots() int { return cap(s.gate.slots) }

// Add validates and creates an account from the command line or a
// trusted caller; the event names actor (see CreateUser for the API).
func (s *Service) Add(ctx context.Context, n NewUser) (User, error) {
	return s.create(ctx, identity.Principal{}, n)
}

func (s *Service) create(ctx context.Context, actor identity.Principal, n NewUser) (User, error) {
	var errs validate.Errors
	username := strings.ToLower(strings.TrimSpace(n.Username))
	if !usernameRe.MatchString(username) {
		errs.Add("username", "must be 3-64 characters: lower-case letters, digits, '.', '_', '@' or '-'")
	}
	checkPassword(&errs, "password", n.Password)
	if !n.Role.Valid() {
		errs.Add("role", "must be one of customer, driver, operator, admin")
	}
	u := User{
		Username: username,
		Role:     n.Role,
		Name:     errs.Line("name", n.Name, false, 120),
		Phone:    errs.Phone("phone", n.Phone, false),
	}
	if n.Role == identity.Driver {
		plate, _ := errs.Plate("vehicle_plate", n.VehiclePlate, true)
		p := &DriverProfile{VehiclePlate: plate}
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
	var hash string
	if err := s.gate.do(ctx, func() (err error) { hash, err = s.hasher.Hash(n.Password); return err }); err != nil {
		return User{}, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	u.ID = id.New("usr", now)
	u.PasswordHash = hash
	u.CreatedAt, u.UpdatedAt = now, now
	ev := audit.New(ctx, now, audit.UserCreated, actor, u.ID, map[string]string{"username": u.Username, "role": string(u.Role)})
	if err := s.store.CreateUser(ctx, u, ev); err != nil {
		if errors.Is(err, fleet.ErrUnknownProvider) {
			return User{}, validate.Errors{{Field: "provider", Message: "no provider has this code"}}
		}
		return User{}, fmt.Errorf("add user %s: %w", username, err)
	}
	return u, nil
}

func checkPassword(errs *validate.Errors, field, pw string) {
	if l := len(pw); l < 8 || l > 256 {
		errs.Add(field, "must be 8-256 characters")
	}
}
