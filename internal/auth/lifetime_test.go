package auth

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/yolda/yolda/internal/identity"
)

// A token signed with the right key but claiming a longer life than this
// server gives is refused, and so is one without an issue time.
func TestLifetimeBeyondTTLRefused(t *testing.T) {
	now := time.Now()
	tok, _ := NewTokens(secret, time.Hour, func() time.Time { return now })
	mint := func(claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := func(iat, exp time.Time) jwt.MapClaims {
		return jwt.MapClaims{"sub": "usr_1", "role": "admin", "iss": "yolda", "iat": iat.Unix(), "exp": exp.Unix()}
	}
	generous, _ := NewTokens(secret, 2*time.Hour, func() time.Time { return now })
	longer, _ := generous.Issue(identity.Principal{UserID: "usr_1", Role: identity.Customer})
	noIat := jwt.MapClaims{"sub": "usr_1", "role": "admin", "iss": "yolda", "exp": now.Add(time.Minute).Unix()}
	for name, s := range map[string]string{
		"a year":                   mint(base(now, now.Add(365*24*time.Hour))),
		"issued by a 2h server":    longer,
		"no iat":                   mint(noIat),
		"issued in the future":     mint(base(now.Add(10*time.Minute), now.Add(40*time.Minute))),
		"negative version":         mint(jwt.MapClaims{"sub": "usr_1", "role": "admin", "iss": "yolda", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "tv": -1}),
		"issued long ago, not yet": mint(base(now.Add(-47*time.Hour), now.Add(time.Hour))),
	} {
		if _, err := tok.Verify(s); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: err = %v, want ErrInvalidToken", name, err)
		}
	}
	// Control: exactly the TTL, and less, pass.
	for _, life := range []time.Duration{time.Hour, time.Minute} {
		if _, err := tok.Verify(mint(base(now, now.Add(life)))); err != nil {
			t.Errorf("lifetime %s refused: %v", life, err)
		}
	}
}

func TestTokenVersionTravels(t *testing.T) {
	tok, _ := NewTokens(secret, time.Hour, nil)
	want := identity.Principal{UserID: "usr_1", Username: "ayse", Role: identity.Customer, TokenVersion: 7}
	s, err := tok.Issue(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tok.Verify(s)
	if err != nil || got != want {
		t.Errorf("got %+v %v, want %+v", got, err, want)
	}
}

// Processes starting together on a fresh data dir all end up with one
// secret, and none of them ever reads the file before it is complete.
// (The old code created the file and wrote it afterwards: a second caller
// that lost the O_EXCL race read it empty and failed with "too short".)
func TestLoadOrCreateSecretConcurrent(t *testing.T) {
	for round := range 200 {
		dir := filepath.Join(t.TempDir(), "data")
		const callers = 8
		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			results = make([][]byte, callers)
			errs    = make([]error, callers)
		)
		for i := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				results[i], errs[i] = LoadOrCreateSecret(dir)
			}()
		}
		close(start)
		wg.Wait()
		for i := range callers {
			if errs[i] != nil {
				t.Fatalf("round %d caller %d: %v", round, i, errs[i])
			}
			if string(results[i]) != string(results[0]) {
				t.Fatalf("round %d: callers got different secrets", round)
			}
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			names := []string{}
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Fatalf("round %d: data dir holds %v, want only the secret", round, names)
		}
		info, err := os.Stat(dir)
		if err != nil || info.Mode().Perm()&0o077 != 0 {
			t.Fatalf("round %d: data dir mode %v (%v), want no access for others", round, info.Mode().Perm(), err)
		}
	}
}
