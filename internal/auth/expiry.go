package auth

import (
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Expiry returns when a token that Verify accepted expires: a long-lived
// connection (the WebSocket) is closed then. It reads the claim without
// checking the signature again, so call it only after Verify.
func (t *Tokens) Expiry(token string) (time.Time, error) {
	var c jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err != nil || c.ExpiresAt == nil {
		return time.Time{}, fmt.Errorf("%w: no expiry", ErrInvalidToken)
	}
	return c.ExpiresAt.Time, nil
}
