package account

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/yolda/yolda/internal/audit"
	"github.com/yolda/yolda/internal/identity"
)

// A signature proves only that Yolda issued a token once. Resolve asks the
// store, on every request, whether the token's account still exists, is
// enabled, has the token's role and has not had its tokens revoked since
// (its token version). Answers are cached for a few seconds, so a check
// costs a map lookup; this process forgets an account's entry the moment
// it changes the account, and other processes see the change within the
// cache's lifetime.

// DefaultPrincipalTTL is how long a resolved account is trusted.
const DefaultPrincipalTTL = 5 * time.Second

// maxCached bounds the cache; past it, it starts over.
const maxCached = 100_000

type cachedAccount struct {
	found    bool
	username string
	role     identity.Role
	disabled bool
	version  int64
	at       time.Time
}

type principalCache struct {
	ttl     time.Duration
	mu      sync.Mutex
	entries map[string]cachedAccount
}

func newPrincipalCache(ttl time.Duration) *principalCache {
	return &principalCache{ttl: ttl, entries: map[string]cachedAccount{}}
}

func (c *principalCache) get(id string, now time.Time) (cachedAccount, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[id]
	if !ok || now.Sub(e.at) >= c.ttl || now.Before(e.at) {
		return cachedAccount{}, false
	}
	return e, true
}

func (c *principalCache) put(id string, e cachedAccount) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCached {
		clear(c.entries)
	}
	c.entries[id] = e
}

func (c *principalCache) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, id)
}

// Resolve returns the principal a verified token speaks for now, or an
// error wrapping ErrTokenRefused. p is what the token claims.
func (s *Service) Resolve(ctx context.Context, p identity.Principal) (identity.Principal, error) {
	now := s.now()
	acc, ok := s.known.get(p.UserID, now)
	if !ok {
		u, err := s.store.UserByID(ctx, p.UserID)
		switch {
		case errors.Is(err, ErrNotFound):
			acc = cachedAccount{at: now}
		case err != nil:
			return identity.Principal{}, fmt.Errorf("resolve token: %w", err)
		default:
			acc = cachedAccount{found: true, username: u.Username, role: u.Role, disabled: u.Disabled, version: u.TokenVersion, at: now}
		}
		s.known.put(p.UserID, acc)
	}
	reason := ""
	switch {
	case !acc.found:
		reason = "unknown_user"
	case acc.disabled:
		reason = "disabled"
	case p.TokenVersion != acc.version:
		reason = "revoked"
	case p.Role != acc.role:
		reason = "role_changed"
	}
	if reason != "" {
		s.m.tokenRefused.WithLabelValues(reason).Inc()
		if s.refusals.first(p.UserID, reason, now) {
			s.audit.Record(ctx, audit.New(ctx, now, audit.TokenRefused, identity.Principal{}, p.UserID, map[string]string{"reason": reason}))
		}
		return identity.Principal{}, fmt.Errorf("%w: %s", ErrTokenRefused, reason)
	}
	return identity.Principal{UserID: p.UserID, Username: acc.username, Role: acc.role, TokenVersion: acc.version}, nil
}

// refusalLog keeps the audit trail from being flooded by one client
// replaying a dead token: one event per account and reason per minute.
type refusalLog struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func newRefusalLog() *refusalLog { return &refusalLog{seen: map[string]time.Time{}} }

func (l *refusalLog) first(userID, reason string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := userID + "\x00" + reason
	if at, ok := l.seen[key]; ok && now.Sub(at) < time.Minute {
		return false
	}
	if len(l.seen) >= maxCached {
		clear(l.seen)
	}
	l.seen[key] = now
	return true
}
