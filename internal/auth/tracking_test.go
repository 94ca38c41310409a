package auth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/identity"
)

func newLinks(t *testing.T, now func() time.Time) *TrackingLinks {
	t.Helper()
	l, err := NewTrackingLinks(secret, 2*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestTrackingRoundTrip(t *testing.T) {
	l := newLinks(t, nil)
	tok, exp, err := l.Issue("req_1", "usr_ayse")
	if err != nil {
		t.Fatal(err)
	}
	got, err := l.Verify(tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got.RequestID != "req_1" || got.OwnerID != "usr_ayse" || !got.ExpiresAt.Equal(exp) {
		t.Errorf("got %+v, want req_1 for usr_ayse until %s", got, exp)
	}
	if d := time.Until(exp); d < 2*time.Hour-time.Minute || d > 2*time.Hour {
		t.Errorf("expires in %s, want about 2h", d)
	}
}

func TestTrackingExpiredRefused(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	l := newLinks(t, clock)
	tok, _, err := l.Issue("req_1", "usr_ayse")
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(2*time.Hour + time.Second)
	if _, err := l.Verify(tok); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("expired link: %v, want ErrInvalidToken", err)
	}
}

// A tracking token is no access token and an access token is no tracking
// token, though both are signed from the same secret.
func TestTrackingAndAccessTokensDoNotMix(t *testing.T) {
	l := newLinks(t, nil)
	tok := newTokens(t, secret, nil)
	link, _, err := l.Issue("req_1", "usr_ayse")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := tok.Verify(link); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("a tracking token passed as an access token: %+v %v", p, err)
	}
	access := issue(t, tok, identity.Principal{UserID: "usr_ayse", Username: "ayse", Role: identity.Customer})
	if g, err := l.Verify(access); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("an access token passed as a tracking token: %+v %v", g, err)
	}
	// Signed with the plain secret but claiming the tracking issuer: the
	// key differs, so it is refused.
	forged := sign(secret, b64(`{"alg":"HS256","typ":"JWT"}`)+"."+b64(`{"iss":"yolda-track","sub":"req_1","own":"usr_ayse","iat":`+
		itoa(time.Now().Unix())+`,"exp":`+itoa(time.Now().Add(time.Hour).Unix())+`}`))
	if g, err := l.Verify(forged); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("a token signed with the access key passed: %+v %v", g, err)
	}
}

func TestTrackingTamperedRefused(t *testing.T) {
	l := newLinks(t, nil)
	tok, _, err := l.Issue("req_1", "usr_ayse")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	parts[1] = b64(`{"iss":"yolda-track","sub":"req_2","own":"usr_ayse","iat":` + itoa(time.Now().Unix()) +
		`,"exp":` + itoa(time.Now().Add(time.Hour).Unix()) + `}`)
	if g, err := l.Verify(strings.Join(parts, ".")); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("a link re-pointed at another request passed: %+v %v", g, err)
	}
}

func TestTrackingLifetimeCapped(t *testing.T) {
	long, err := NewTrackingLinks(secret, 48*time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := long.Issue("req_1", "usr_ayse")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newLinks(t, nil).Verify(tok); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("a link longer-lived than the configured lifetime passed: %v", err)
	}
}
