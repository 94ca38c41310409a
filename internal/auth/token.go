// Package auth issues and checks the bearer tokens of the API: HS256 JWTs
// carrying the user id, username and role. The algorithm is pinned, the
// expiry is required, and the secret never lives in the code.
package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/yolda/yolda/internal/identity"
)

// ErrInvalidToken covers every reason a token is refused: missing, expired,
// forged, malformed or signed with another algorithm. Callers answer 401 and
// need not know which.
var ErrInvalidToken = errors.New("invalid token")

const issuer = "yolda"

// Tokens issues and verifies access tokens.
type Tokens struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
	parser *jwt.Parser
}

// MinSecretBytes is the shortest HS256 secret accepted: RFC 7518 asks for a
// key at least as long as the hash output.
const MinSecretBytes = 32

// NewTokens returns a token service. now may be nil (time.Now).
func NewTokens(secret []byte, ttl time.Duration, now func() time.Time) (*Tokens, error) {
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("jwt secret: need at least %d bytes, got %d", MinSecretBytes, len(secret))
	}
	if now == nil {
		now = time.Now
	}
	return &Tokens{
		secret: secret,
		ttl:    ttl,
		now:    now,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithIssuer(issuer),
			jwt.WithLeeway(30*time.Second),
			jwt.WithTimeFunc(now),
		),
	}, nil
}

// TTL is how long an issued token lives.
func (t *Tokens) TTL() time.Duration { return t.ttl }

type claims struct {
	Username string        `json:"preferred_username"`
	Role     identity.Role `json:"role"`
	jwt.RegisteredClaims
}

// Issue returns a signed token for p.
func (t *Tokens) Issue(p identity.Principal) (string, error) {
	now := t.now()
	c := claims{
		Username: p.Username,
		Role:     p.Role,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   p.UserID,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now.Add(-time.Second)),
			ExpiresAt: jwt.NewNumericDate(now.Add(t.ttl)),
		},
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.secret)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// Verify checks a token and returns who it speaks for.
func (t *Tokens) Verify(token string) (identity.Principal, error) {
	var c claims
	_, err := t.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.secret, nil })
	if err != nil {
		return identity.Principal{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if c.Subject == "" || !c.Role.Valid() {
		return identity.Principal{}, fmt.Errorf("%w: missing subject or role", ErrInvalidToken)
	}
	return identity.Principal{UserID: c.Subject, Username: c.Username, Role: c.Role}, nil
}

// LoadOrCreateSecret returns the signing secret kept in dir, creating a
// random one (0600) the first time. Several processes sharing dir share the
// secret; processes on different machines must be given YOLDA_JWT_SECRET.
func LoadOrCreateSecret(dir string) ([]byte, error) {
	path := filepath.Join(dir, "jwt-secret")
	if b, err := os.ReadFile(path); err == nil {
		secret := []byte(strings.TrimSpace(string(b)))
		if len(secret) < MinSecretBytes {
			return nil, fmt.Errorf("jwt secret in %s is too short", path)
		}
		return secret, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read jwt secret: %w", err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generate jwt secret: %w", err)
	}
	secret := []byte(hex.EncodeToString(raw))
	// O_EXCL: if another process created it a moment ago, use theirs.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return LoadOrCreateSecret(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("create jwt secret: %w", err)
	}
	if _, err := f.Write(append(secret, '\n')); err != nil {
		f.Close()
		return nil, fmt.Errorf("write jwt secret: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("write jwt secret: %w", err)
	}
	return secret, f.Close()
}
