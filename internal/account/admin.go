package account

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/yolda/yolda/internal/audit"
	"github.com/yolda/yolda/internal/id"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/validate"
)

// Account management is for admins: the API's admin endpoints and the
// command line (which acts as an admin named after the OS user). Every
// change is written with its audit event in one transaction, and every
// change that matters to a token (role, disabling, password, revocation)
// raises the account's token version, so tokens issued before stop
// working at once in this process and within the principal cache's
// lifetime in others.

// Limits of a list page.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// UserPage is one page of a user list.
type UserPage struct {
	Items      []User
	NextCursor string
}

func requireAdmin(who identity.Principal) error {
	if who.Role != identity.Admin {
		return ErrForbidden
	}
	return nil
}

// CreateUser creates an account on an admin's behalf.
func (s *Service) CreateUser(ctx context.Context, who identity.Principal, n NewUser) (User, error) {
	if err := requireAdmin(who); err != nil {
		return User{}, err
	}
	return s.create(ctx, who, n)
}

// Lookup returns the user with the given id or username.
func (s *Service) Lookup(ctx context.Context, who identity.Principal, idOrUsername string) (User, error) {
	if err := requireAdmin(who); err != nil {
		return User{}, err
	}
	if id.Valid("usr", idOrUsername) {
		return s.store.UserByID(ctx, idOrUsername)
	}
	return s.store.UserByUsername(ctx, strings.ToLower(strings.TrimSpace(idOrUsername)))
}

// ListUsers returns a page of users, newest first.
func (s *Service) ListUsers(ctx context.Context, who identity.Principal, f UserFilter) (UserPage, error) {
	if err := requireAdmin(who); err != nil {
		return UserPage{}, err
	}
	if f.Limit <= 0 {
		f.Limit = DefaultLimit
	}
	limit := f.Limit
	f.Limit++
	items, err := s.store.Users(ctx, f)
	if err != nil {
		return UserPage{}, fmt.Errorf("list users: %w", err)
	}
	p := UserPage{Items: items}
	if len(items) > limit {
		p.Items = items[:limit]
		p.NextCursor = items[limit-1].ID
	}
	return p, nil
}

// SetRole changes a user's role. An admin cannot change its own.
func (s *Service) SetRole(ctx context.Context, who identity.Principal, userID string, role identity.Role) (User, error) {
	if !role.Valid() {
		return User{}, validate.Errors{{Field: "role", Message: "must be one of customer, driver, operator, admin"}}
	}
	return s.update(ctx, who, userID, func(u *User, now time.Time) ([]audit.Event, error) {
		if u.Role == role {
			return nil, nil
		}
		if u.ID == who.UserID {
			return nil, fmt.Errorf("%w: an admin cannot change its own role; another admin or the command line can", ErrConflict)
		}
		if role == identity.Driver && u.Driver == nil {
			return nil, validate.Errors{{Field: "role", Message: "this account has no vehicle: create a driver account instead"}}
		}
		from := u.Role
		u.Role = role
		u.TokenVersion++
		return []audit.Event{audit.New(ctx, now, audit.UserRoleChanged, who, u.ID, map[string]string{"from": string(from), "to": string(role)})}, nil
	})
}

// SetDisabled disables or enables a user. Disabling revokes its tokens;
// enabling does not bring them back. An admin cannot disable itself.
func (s *Service) SetDisabled(ctx context.Context, who identity.Principal, userID string, disabled bool, reason string) (User, error) {
	var errs validate.Errors
	reason = errs.Text("reason", reason, false, 500)
	if err := errs.Err(); err != nil {
		return User{}, err
	}
	return s.update(ctx, who, userID, func(u *User, now time.Time) ([]audit.Event, error) {
		if u.Disabled == disabled {
			return nil, nil
		}
		action := audit.UserEnabled
		if disabled {
			if u.ID == who.UserID {
				return nil, fmt.Errorf("%w: an admin cannot disable its own account", ErrConflict)
			}
			action = audit.UserDisabled
			u.TokenVersion++
		}
		u.Disabled = disabled
		var details map[string]string
		if reason != "" {
			details = map[string]string{"reason": reason}
		}
		return []audit.Event{audit.New(ctx, now, action, who, u.ID, details)}, nil
	})
}

// ResetPassword sets a new password and revokes the user's tokens.
func (s *Service) ResetPassword(ctx context.Context, who identity.Principal, userID, password string) (User, error) {
	if err := requireAdmin(who); err != nil {
		return User{}, err
	}
	var errs validate.Errors
	checkPassword(&errs, "password", password)
	if err := errs.Err(); err != nil {
		return User{}, err
	}
	var hash string
	// Hashed before the transaction: a write lock is never held for the
	// length of a hash.
	if err := s.gate.do(ctx, func() (err error) { hash, err = s.hasher.Hash(password); return err }); err != nil {
		return User{}, err
	}
	return s.update(ctx, who, userID, func(u *User, now time.Time) ([]audit.Event, error) {
		u.PasswordHash = hash
		u.TokenVersion++
		return []audit.Event{audit.New(ctx, now, audit.UserPasswordReset, who, u.ID, nil)}, nil
	})
}

// RevokeTokens makes every token issued to the user so far invalid.
func (s *Service) RevokeTokens(ctx context.Context, who identity.Principal, userID string) (User, error) {
	return s.update(ctx, who, userID, func(u *User, now time.Time) ([]audit.Event, error) {
		u.TokenVersion++
		return []audit.Event{audit.New(ctx, now, audit.UserTokensRevoked, who, u.ID,
			map[string]string{"token_version": fmt.Sprint(u.TokenVersion)})}, nil
	})
}

// update applies fn to the user in one store transaction with the events
// it returns, then forgets the cached principal.
func (s *Service) update(ctx context.Context, who identity.Principal, userID string, fn func(*User, time.Time) ([]audit.Event, error)) (User, error) {
	if err := requireAdmin(who); err != nil {
		return User{}, err
	}
	if !id.Valid("usr", userID) {
		return User{}, ErrNotFound
	}
	u, err := s.store.UpdateUser(ctx, userID, func(u *User) ([]audit.Event, error) {
		now := s.now().UTC().Truncate(time.Microsecond)
		events, err := fn(u, now)
		if err == nil && len(events) > 0 {
			u.UpdatedAt = now
		}
		return events, err
	})
	s.known.forget(userID)
	return u, err
}
