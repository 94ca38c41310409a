package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Tracking links: the customer's tracking page opens from a link (an SMS,
// say) without a login. The link carries a token that names one request and
// nothing else: it reads that request and may cancel it, for a short while.
//
// A tracking token is not an access token and can never pass for one: it is
// signed with its own key (derived from the signing secret, so no new
// secret to manage) and carries its own issuer, so each parser refuses the
// other's tokens twice over.
const trackingIssuer = "yolda-track"

// TrackingLinks issues and verifies tracking tokens.
type TrackingLinks struct {
	key    []byte
	ttl    time.Duration
	now    func() time.Time
	parser *jwt.Parser
}

// Tracking is what a verified tracking token grants: read and cancel
// RequestID, acting for OwnerID, the account that asked for help.
type Tracking struct {
	RequestID string
	OwnerID   string
	ExpiresAt time.Time
}

type trackingClaims struct {
	Owner string `json:"own"`
	jwt.RegisteredClaims
}

// NewTrackingLinks returns the tracking token service over the API's
// signing secret. now may be nil (time.Now).
func NewTrackingLinks(secret []byte, ttl time.Duration, now func() time.Time) (*TrackingLinks, error) {
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("jwt secret: need at least %d bytes, got %d", MinSecretBytes, len(secret))
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("tracking link lifetime must be positive, got %s", ttl)
	}
	if now == nil {
		now = time.Now
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("yolda tracking links v1"))
	return &TrackingLinks{
		key: mac.Sum(nil),
		ttl: ttl,
		now: now,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithIssuer(trackingIssuer),
			// No leeway: an expired link is refused on the second.
			jwt.WithTimeFunc(now),
		),
	}, nil
}

// TTL is how long an issued link lives.
func (l *TrackingLinks) TTL() time.Duration { return l.ttl }

// Issue returns a token for requestID, acting for ownerID.
func (l *TrackingLinks) Issue(requestID, ownerID string) (string, time.Time, error) {
	now := l.now()
	exp := now.Add(l.ttl).Truncate(time.Second)
	c := trackingClaims{
		Owner: ownerID,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    trackingIssuer,
			Subject:   requestID,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(l.key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign tracking token: %w", err)
	}
	return s, exp, nil
}

// Verify checks a tracking token and returns what it grants; every refusal
// is ErrInvalidToken.
func (l *TrackingLinks) Verify(token string) (Tracking, error) {
	var c trackingClaims
	_, err := l.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return l.key, nil })
	if err != nil {
		return Tracking{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if c.Subject == "" || c.Owner == "" {
		return Tracking{}, fmt.Errorf("%w: missing request or owner", ErrInvalidToken)
	}
	// A link lives no longer than this server would make it.
	if c.ExpiresAt.Sub(c.IssuedAt.Time) > l.ttl+time.Second {
		return Tracking{}, fmt.Errorf("%w: lifetime exceeds %s", ErrInvalidToken, l.ttl)
	}
	return Tracking{RequestID: c.Subject, OwnerID: c.Owner, ExpiresAt: c.ExpiresAt.Time}, nil
}
