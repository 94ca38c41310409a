package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/yolda/yolda/internal/identity"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

// newTokens and issue fail the test on a setup error.
func newTokens(t *testing.T, key []byte, now func() time.Time) *Tokens {
	t.Helper()
	tok, err := NewTokens(key, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func issue(t *testing.T, tok *Tokens, p identity.Principal) string {
	t.Helper()
	s, err := tok.Issue(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestIssueVerifyRoundTrip(t *testing.T) {
	tok := newTokens(t, secret, nil)
	want := identity.Principal{UserID: "usr_1", Username: "ayse", Role: identity.Customer}
	s, err := tok.Issue(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tok.Verify(s)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func sign(key []byte, unsigned string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(unsigned))
	return unsigned + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func TestVerifyRefuses(t *testing.T) {
	now := time.Now()
	admin := identity.Principal{UserID: "usr_1", Role: identity.Admin}
	tok := newTokens(t, secret, func() time.Time { return now })
	good := issue(t, tok, admin)
	expired := issue(t, newTokens(t, secret, func() time.Time { return now.Add(-2 * time.Hour) }), admin)
	forged := issue(t, newTokens(t, []byte("another-secret-another-secret-xx"), nil), admin)
	exp := now.Add(time.Hour).Unix()
	payload := b64(`{"sub":"usr_1","role":"admin","iss":"yolda","exp":` + itoa(exp) + `}`)
	algNone := b64(`{"alg":"none","typ":"JWT"}`) + "." + payload + "."
	noExp := sign(secret, b64(`{"alg":"HS256","typ":"JWT"}`)+"."+b64(`{"sub":"usr_1","role":"admin","iss":"yolda"}`))
	badRole := sign(secret, b64(`{"alg":"HS256","typ":"JWT"}`)+"."+b64(`{"sub":"usr_1","role":"root","iss":"yolda","exp":`+itoa(exp)+`}`))
	// HS384 with the same secret: valid signature, wrong (unpinned) algorithm.
	hs384, err := jwt.NewWithClaims(jwt.SigningMethodHS384, jwt.MapClaims{"sub": "usr_1", "role": "admin", "iss": "yolda", "exp": exp}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	tampered := good[:strings.LastIndex(good, ".")] + "x" + good[strings.LastIndex(good, "."):]

	for name, s := range map[string]string{
		"empty": "", "garbage": "not.a.token", "expired": expired, "forged": forged,
		"alg none": algNone, "no exp": noExp, "unknown role": badRole, "hs384": hs384, "tampered": tampered,
	} {
		if _, err := tok.Verify(s); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: err = %v, want ErrInvalidToken", name, err)
		}
	}
	if _, err := tok.Verify(good); err != nil {
		t.Errorf("control: good token refused: %v", err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestShortSecretRefused(t *testing.T) {
	if _, err := NewTokens([]byte("short"), time.Hour, nil); err == nil {
		t.Fatal("a 5-byte secret was accepted")
	}
}

func TestLoadOrCreateSecretIsStable(t *testing.T) {
	dir := t.TempDir()
	a, err := LoadOrCreateSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreateSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) || len(a) < MinSecretBytes {
		t.Fatalf("secret changed or too short: %q vs %q", a, b)
	}
	info, err := os.Stat(filepath.Join(dir, "jwt-secret"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("secret file mode %v, want 0600", info.Mode().Perm())
	}
	c, err := LoadOrCreateSecret(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if string(a) == string(c) {
		t.Error("two data dirs got the same secret")
	}
}
