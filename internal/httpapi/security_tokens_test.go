package httpapi_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/yolda/yolda/internal/httpapi"
	"github.com/yolda/yolda/internal/id"
)

// testSecret is the fixture's signing secret.
const testSecret = "test-secret-test-secret-test-secret"

// TestTokenForgeryMatrix: every way to present a token the server did not
// issue, or no longer honours, is 401 with WWW-Authenticate. The control
// row, a token made by hand the way the server makes them, passes: the
// refusals are about what each row changes, not about how it was built.
func TestTokenForgeryMatrix(t *testing.T) {
	f := setup(t, "sqlite", httpapi.Options{})
	user := f.users["ayse"]
	now := time.Now()
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{
			"iss": "yolda", "sub": user.ID, "preferred_username": user.Username, "role": "customer",
			"iat": now.Unix(), "nbf": now.Add(-time.Second).Unix(), "exp": now.Add(time.Hour).Unix(),
		}
		if edit != nil {
			edit(c)
		}
		return c
	}
	sign := func(m jwt.SigningMethod, key any, c jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(m, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	hs256 := func(edit func(jwt.MapClaims)) string {
		return sign(jwt.SigningMethodHS256, []byte(testSecret), claims(edit))
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	good := hs256(nil)
	parts := strings.Split(good, ".")
	tamperedPayload := b64([]byte(strings.Replace(mustDecode(t, parts[1]), `"customer"`, `"admin"`, 1)))

	cases := map[string]string{ // name -> Authorization header
		"missing header":        "",
		"empty bearer":          "Bearer ",
		"other scheme":          "Basic " + b64([]byte("ayse:ayse-password")),
		"garbage":               "Bearer abc.def.ghi",
		"not a JWT":             "Bearer " + strings.Repeat("A", 200),
		"expired":               "Bearer " + hs256(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() }),
		"no expiry":             "Bearer " + hs256(func(c jwt.MapClaims) { delete(c, "exp") }),
		"not yet valid":         "Bearer " + hs256(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() }),
		"wrong issuer":          "Bearer " + hs256(func(c jwt.MapClaims) { c["iss"] = "someone-else" }),
		"no issuer":             "Bearer " + hs256(func(c jwt.MapClaims) { delete(c, "iss") }),
		"no subject":            "Bearer " + hs256(func(c jwt.MapClaims) { delete(c, "sub") }),
		"unknown role":          "Bearer " + hs256(func(c jwt.MapClaims) { c["role"] = "root" }),
		"no role":               "Bearer " + hs256(func(c jwt.MapClaims) { delete(c, "role") }),
		"wrong key":             "Bearer " + sign(jwt.SigningMethodHS256, []byte("another-secret-another-secret-xxxx"), claims(nil)),
		"HS384, right key":      "Bearer " + sign(jwt.SigningMethodHS384, []byte(testSecret), claims(nil)),
		"HS512, right key":      "Bearer " + sign(jwt.SigningMethodHS512, []byte(testSecret), claims(nil)),
		"RS256":                 "Bearer " + sign(jwt.SigningMethodRS256, rsaKey, claims(nil)),
		"alg none":              "Bearer " + b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + ".",
		"alg none, signature":   "Bearer " + b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2],
		"tampered payload":      "Bearer " + parts[0] + "." + tamperedPayload + "." + parts[2],
		"signature stripped":    "Bearer " + parts[0] + "." + parts[1] + ".",
		"token twice":           "Bearer " + good + " " + good,
		"role raised, resigned": "Bearer " + sign(jwt.SigningMethodHS256, []byte("another-secret-another-secret-xxxx"), claims(func(c jwt.MapClaims) { c["role"] = "admin" })),
		// Signed with the right key, but no longer (or never) honoured:
		// the account is checked on every request.
		"ghost user":            "Bearer " + hs256(func(c jwt.MapClaims) { c["sub"] = id.New("usr", now) }),
		"role it does not have": "Bearer " + hs256(func(c jwt.MapClaims) { c["role"] = "admin" }),
		"revoked version":       "Bearer " + hs256(func(c jwt.MapClaims) { c["tv"] = 3 }),
		"lifetime beyond TTL":   "Bearer " + hs256(func(c jwt.MapClaims) { c["exp"] = now.Add(48 * time.Hour).Unix() }),
		"no issue time":         "Bearer " + hs256(func(c jwt.MapClaims) { delete(c, "iat") }),
	}
	for _, path := range []string{"/v1/me", "/v1/requests"} {
		for name, header := range cases {
			var headers []string
			if header != "" {
				headers = []string{"Authorization", header}
			}
			a := f.do(t, "GET", path, "", "", headers...)
			if a.status != 401 || a.header.Get("WWW-Authenticate") == "" || !strings.Contains(a.body, "unauthorized") {
				t.Errorf("%s on %s: %d %q %s", name, path, a.status, a.header.Get("WWW-Authenticate"), a.body)
			}
		}
		if a := f.do(t, "GET", path, "", "", "Authorization", "Bearer "+good); a.status != 200 {
			t.Errorf("control: a well-made token on %s answered %d %s", path, a.status, a.body)
		}
	}
}

func mustDecode(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
