package account

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/yolda/yolda/internal/audit"
	"github.com/yolda/yolda/internal/identity"
)

// LoginAttempt is one try at logging in.
type LoginAttempt struct {
	Username string
	Password string
	// Address is the client's address: the failed-login budgets and the
	// audit trail are kept per address.
	Address string
}

// Login returns the user whose password matches. It refuses, before any
// hashing, an attempt the failed-login back-off says must wait (a
// *ThrottledError), and one that finds no hashing slot (ErrBusy). An
// unknown user, a wrong password and a disabled account are all
// ErrBadCredentials, and cost the same.
func (s *Service) Login(ctx context.Context, a LoginAttempt) (User, error) {
	name := strings.ToLower(strings.TrimSpace(a.Username))
	if t := s.tries.check(name, a.Address, s.now()); t != nil {
		s.m.logins.WithLabelValues("throttled").Inc()
		s.m.throttled.WithLabelValues(t.Scope).Inc()
		s.log.InfoContext(ctx, "login refused: failed-login back-off", "scope", t.Scope, "address", a.Address,
			"retry_after", seconds(t.RetryAfter))
		return User{}, t
	}
	u, err := s.store.UserByUsername(ctx, name)
	found := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		return User{}, fmt.Errorf("login: %w", err)
	}
	hash := s.dummyHash
	if found {
		hash = u.PasswordHash
	}
	var match bool
	err = s.gate.do(ctx, func() (err error) { match, err = s.hasher.Verify(hash, a.Password); return err })
	if errors.Is(err, ErrBusy) {
		s.m.logins.WithLabelValues("busy").Inc()
		return User{}, err
	}
	if err != nil {
		return User{}, fmt.Errorf("login %s: %w", u.ID, err)
	}
	now := s.now()
	reason := ""
	switch {
	case !found:
		reason = "unknown_user"
	case !match:
		reason = "password"
	case u.Disabled:
		reason = "disabled"
	}
	if reason != "" {
		wait := s.tries.failure(name, a.Address, now)
		s.m.logins.WithLabelValues("bad_credentials").Inc()
		details := map[string]string{"reason": reason}
		if wait > 0 {
			details["backoff"] = seconds(wait)
		}
		// The attempted name is recorded only when it is an account's:
		// people type their password into the username field.
		s.audit.Record(ctx, audit.New(ctx, now, audit.LoginFailed, identity.Principal{}, u.ID, details))
		s.log.InfoContext(ctx, "login failed", "user_id", u.ID, "reason", reason, "address", a.Address, "backoff", seconds(wait))
		return User{}, ErrBadCredentials
	}
	s.tries.success(name, a.Address, now)
	s.m.logins.WithLabelValues("succeeded").Inc()
	s.audit.Record(ctx, audit.New(ctx, now, audit.LoginSucceeded, Principal(u), u.ID, nil))
	return u, nil
}

// Principal is who u is when it acts: what a token issued to it carries.
func Principal(u User) identity.Principal {
	return identity.Principal{UserID: u.ID, Username: u.Username, Role: u.Role, TokenVersion: u.TokenVersion}
}
