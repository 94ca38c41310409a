// Package auth issues and checks the bearer tokens of the API: HS256 JWTs
// carrying the user id, username, role and the account's token version.
// The algorithm is pinned, the issue and expiry times are required, a
// token that claims to live longer than the configured lifetime is
// refused, and the secret never lives in the code.
//
// A valid signature only says that Yolda issued the token once: whether
// the account still exists, still has that role, is not disabled and has
// not had its tokens revoked since is the account service's question
// (account.Service.Resolve), asked on every request.
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
			jwt.WithIssuedAt(),
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
	// Version is the account's token version when the token was issued;
	// bumping the account's version revokes every older token.
	Version int64 `json:"tv,omitempty"`
	jwt.RegisteredClaims
}

// Issue returns a signed token for p.
func (t *Tokens) Issue(p identity.Principal) (string, error) {
	now := t.now()
	c := claims{
		Username: p.Username,
		Role:     p.Role,
		Version:  p.TokenVersion,
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
	if c.Subject == "" || !c.Role.Valid() || c.Version < 0 {
		return identity.Principal{}, fmt.Errorf("%w: missing subject or role", ErrInvalidToken)
	}
	// A token is only as long-lived as this server would make it: one
	// that claims more was not issued under the current settings (or was
	// issued with a stolen secret by someone generous to themselves).
	if c.IssuedAt == nil || c.ExpiresAt.Sub(c.IssuedAt.Time) > t.ttl+time.Second {
		return identity.Principal{}, fmt.Errorf("%w: lifetime exceeds %s", ErrInvalidToken, t.ttl)
	}
	return identity.Principal{UserID: c.Subject, Username: c.Username, Role: c.Role, TokenVersion: c.Version}, nil
}

// LoadOrCreateSecret returns the signing secret kept in dir, creating a
// random one (0600) the first time. Several processes sharing dir share the
// secret; processes on different machines must be given YOLDA_JWT_SECRET.
//
// The secret is written in full to a temporary file, flushed, and only
// then linked into place: a reader never finds the file empty or half
// written, and a link (unlike a rename) fails when another process linked
// its secret first, whose secret then wins for everybody.
func LoadOrCreateSecret(dir string) ([]byte, error) {
	path := filepath.Join(dir, secretFile)
	if secret, err := readSecret(path); !errors.Is(err, os.ErrNotExist) {
		return secret, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generate jwt secret: %w", err)
	}
	secret := []byte(hex.EncodeToString(raw))
	tmp, err := os.CreateTemp(dir, "."+secretFile+"-*") // 0600
	if err != nil {
		return nil, fmt.Errorf("create jwt secret: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(secret, '\n')); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write jwt secret: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write jwt secret: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("write jwt secret: %w", err)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, os.ErrExist) {
		return readSecret(path)
	} else if err != nil {
		return nil, fmt.Errorf("install jwt secret: %w", err)
	}
	// The link is durable once the directory is.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return secret, nil
}

const secretFile = "jwt-secret"

func readSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("read jwt secret: %w", err)
	}
	secret := []byte(strings.TrimSpace(string(b)))
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("jwt secret in %s is too short", path)
	}
	return secret, nil
}
