package app

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/auth"
	"github.com/yolda/yolda/internal/config"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/realtime"
)

// TestRealtimeRefusals: the upgrade is refused without a token, with a
// forged one and from a page of another origin; a customer's
// subscription to someone else's request is refused like a missing one,
// and none of that request's changes reach it.
func TestRealtimeRefusals(t *testing.T) {
	secret := strings.Repeat("s", 32)
	n := startNode(t, "api,relay,realtime", func(c *config.Config) {
		c.JWTSecret = secret
		c.WSAllowedOrigins = "https://panel.example.com"
	})
	ayse := n.addUser(t, identity.Customer, "ayse")
	n.addUser(t, identity.Customer, "mehmet")
	n.addUser(t, identity.Operator, "ops")
	ayseTok, mehmetTok, opsTok := n.login(t, "ayse"), n.login(t, "mehmet"), n.login(t, "ops")

	forger, err := auth.NewTokens([]byte(strings.Repeat("x", 32)), time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := forger.Issue(identity.Principal{UserID: ayse.ID, Username: "ayse", Role: identity.Operator})
	for _, tc := range []struct {
		name   string
		url    string
		token  string
		origin string
		want   int
	}{
		{"no token", n.wsURL(), "", "", http.StatusUnauthorized},
		{"forged token", n.wsURL(), forged, "", http.StatusUnauthorized},
		{"forged token in the query", n.wsURL() + "?access_token=" + forged, "", "", http.StatusUnauthorized},
		{"another site's page", n.wsURL(), ayseTok, "https://evil.example", http.StatusForbidden},
		{"another site's page, token in the query", n.wsURL() + "?access_token=" + ayseTok, "", "https://evil.example", http.StatusForbidden},
		{"an allowed origin", n.wsURL() + "?access_token=" + ayseTok, "", "https://panel.example.com", http.StatusSwitchingProtocols},
		{"the server's own origin", n.wsURL(), ayseTok, n.url, http.StatusSwitchingProtocols},
		{"no origin (not a browser)", n.wsURL(), ayseTok, "", http.StatusSwitchingProtocols},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.origin != "" {
				h.Set("Origin", tc.origin)
			}
			ws, resp, err := dialWith(t.Context(), tc.url, tc.token, h, nil)
			if resp == nil {
				t.Fatalf("no answer: %v", err)
			}
			if resp.StatusCode != tc.want {
				t.Fatalf("upgrade answered %d, want %d (%v)", resp.StatusCode, tc.want, err)
			}
			if ws != nil {
				ws.CloseNow()
			}
		})
	}

	// Mehmet asks for Ayşe's request: refused as if it did not exist.
	theirs := n.createRequest(t, ayseTok)
	mine := n.createRequest(t, mehmetTok)
	m := dial(t, n, mehmetTok)
	m.send(map[string]any{"type": "subscribe", "request_id": theirs})
	refusal, err := m.read()
	if err != nil || refusal.str("type") != "error" || refusal.str("request_id") != theirs || refusal.str("message") != "request not found" {
		t.Fatalf("subscription to another's request: %v %v", refusal, err)
	}
	m.send(map[string]any{"type": "subscribe", "request_id": "req_01JDQ3M6Y9B1X4G0ZC5V7N2K8P"})
	if missing, _ := m.read(); missing.str("message") != refusal.str("message") {
		t.Errorf("a missing request is refused with %v, another's with %v", missing, refusal)
	}
	m.send(map[string]any{"type": "subscribe", "request_id": mine})
	if st := m.next(statusOf(mine)); st.str("status") != "dispatching" {
		t.Fatalf("own subscription: %v", st)
	}
	// Ayşe's request changes, then Mehmet's. An operator following every
	// request sees both, in that order; Mehmet's connection gets its own
	// change and nothing of Ayşe's before it.
	ops := dial(t, n, opsTok)
	ops.send(map[string]any{"type": "subscribe", "request_id": realtime.AllRequests})
	// A subscription is in place once the server answers a later message.
	ops.send(map[string]any{"type": "subscribe", "request_id": mine})
	ops.next(statusOf(mine))
	n.must(t, 200, "POST", "/v1/requests/"+theirs+"/cancel", ayseTok, map[string]string{"reason": "found help"})
	n.must(t, 200, "POST", "/v1/requests/"+mine+"/cancel", mehmetTok, map[string]string{"reason": "found help"})
	ops.next(func(m message) bool { return statusOf(theirs)(m) && m.str("status") == "cancelled" })
	for {
		msg, err := m.read()
		if err != nil {
			t.Fatal(err)
		}
		if msg.str("request_id") == theirs {
			t.Fatalf("another's request reached the customer: %v", msg)
		}
		if statusOf(mine)(msg) && msg.str("status") == "cancelled" {
			break
		}
	}
}

// TestRealtimeTokenExpiry: a connection is closed when its token
// expires, with the close code and a reason that says what to do.
func TestRealtimeTokenExpiry(t *testing.T) {
	secret := strings.Repeat("s", 32)
	n := startNode(t, "api,realtime", func(c *config.Config) { c.JWTSecret = secret })
	u := n.addUser(t, identity.Customer, "ayse")
	short, err := auth.NewTokens([]byte(secret), 2*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := short.Issue(identity.Principal{UserID: u.ID, Username: "ayse", Role: identity.Customer})
	c := dial(t, n, tok)
	start := time.Now()
	_, err = c.read() // nothing comes before the close
	code, reason := closeStatus(err)
	if code != realtime.CloseTokenExpired || !strings.Contains(reason, "token expired") {
		t.Fatalf("closed with %d %q (%v), want %d and the reason", code, reason, err, realtime.CloseTokenExpired)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("closed %v after connecting, for a token of 2 s", took)
	}
}

// TestRealtimeStatusOverflow: a client that stops reading while status
// messages pile up past its queue is disconnected with CloseTooSlow
// (status messages are never dropped: it resumes instead).
func TestRealtimeStatusOverflow(t *testing.T) {
	n := startNode(t, "api,relay,realtime", func(c *config.Config) { c.WSStatusQueue = 8 }, smallSendBuffers)
	n.addUser(t, identity.Customer, "ayse")
	n.addUser(t, identity.Operator, "ops")
	ayseTok, opsTok := n.login(t, "ayse"), n.login(t, "ops")
	slowHTTP := &http.Client{Transport: &http.Transport{DialContext: smallReceiveBuffer}}
	ws, resp, err := dialWith(t.Context(), n.wsURL(), opsTok, nil, slowHTTP)
	if err != nil {
		t.Fatalf("dial: %v (%s)", err, status(resp))
	}
	slow := &client{t: t, ws: ws}
	slow.send(map[string]any{"type": "subscribe", "request_id": realtime.AllRequests})
	first := n.createRequest(t, ayseTok)
	slow.next(statusOf(first)) // following every request from here
	// The slow client reads nothing while requests come in, until the
	// gateway gives up on it.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for i := 0; ; i++ {
		if ctx.Err() != nil {
			t.Fatalf("still connected after %d requests", i)
		}
		n.createRequest(t, ayseTok)
		if ended, _ := telemetryValue(n, "yolda_ws_disconnects_total", map[string]string{"reason": "slow"}); ended > 0 {
			t.Logf("disconnected after %d requests", i+1)
			break
		}
	}
	for {
		_, err := slow.read()
		if err == nil {
			continue // what the buffers held
		}
		if code, reason := closeStatus(err); code != realtime.CloseTooSlow || !strings.Contains(reason, "resume") {
			t.Logf("closed with %d %q (%v)", code, reason, err)
			// The close frame may not get through a full buffer; the
			// metric above says why the gateway ended it.
		}
		break
	}
}

// TestRealtimeTokenRevoked: revoking an account's tokens closes its open
// connection at the next check, with 4003 and a reason.
func TestRealtimeTokenRevoked(t *testing.T) {
	n := startNode(t, "api,realtime", func(c *config.Config) {
		c.WSPingInterval, c.WSTokenRecheck = time.Second, time.Second
	})
	u := n.addUser(t, identity.Customer, "ayse")
	admin := n.addUser(t, identity.Admin, "root")
	c := dial(t, n, n.login(t, "ayse"))
	svc, err := account.NewService(n.p.store, account.DefaultHasher())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RevokeTokens(t.Context(), identity.Principal{UserID: admin.ID, Username: "root", Role: identity.Admin}, u.ID); err != nil {
		t.Fatal(err)
	}
	_, err = c.read()
	if code, reason := closeStatus(err); code != realtime.CloseTokenRefused || !strings.Contains(reason, "log in again") {
		t.Fatalf("closed with %d %q (%v), want %d", code, reason, err, realtime.CloseTokenRefused)
	}
}
