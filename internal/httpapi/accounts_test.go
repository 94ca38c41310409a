package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/yolda/yolda/internal/deadletter"
	"github.com/yolda/yolda/internal/httpapi"
	"github.com/yolda/yolda/internal/id"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
)

// mint signs claims with the fixture's secret: a token Yolda could have
// issued, whatever it says.
func mint(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A valid signature is not enough: the token must speak for an account
// that exists, has that role, is enabled and has not had its tokens
// revoked, and must not claim a longer life than the server gives.
func TestTokensAreCheckedAgainstTheAccount(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		f := setup(t, engine, httpapi.Options{})
		now := time.Now()
		ghost, _ := f.issuer.Issue(identity.Principal{UserID: id.New("usr", now), Username: "ghost", Role: identity.Customer})
		promoted, _ := f.issuer.Issue(identity.Principal{UserID: f.users["ayse"].ID, Username: "ayse", Role: identity.Admin})
		yearLong := mint(t, jwt.MapClaims{"sub": f.users["ayse"].ID, "role": "customer", "iss": "yolda",
			"iat": now.Unix(), "exp": now.Add(365 * 24 * time.Hour).Unix()})
		for name, tok := range map[string]string{"ghost user": ghost, "role it does not have": promoted, "lifetime beyond the TTL": yearLong} {
			a := f.do(t, "POST", "/v1/requests", tok, validBody)
			if a.status != http.StatusUnauthorized {
				t.Errorf("%s: %d %s", name, a.status, a.body)
			}
		}
		if page, _ := f.store.Requests(context.Background(), intakeFilter(10)); len(page) != 0 {
			t.Errorf("refused tokens created %d requests", len(page))
		}

		// Revoked through the admin API: the token dies at once.
		if a := f.do(t, "GET", "/v1/me", "mehmet", ""); a.status != 200 {
			t.Fatalf("control: %d", a.status)
		}
		if a := f.do(t, "POST", "/v1/admin/users/"+f.users["mehmet"].ID+"/revoke-tokens", "admin", ""); a.status != 200 || a.json(t)["token_version"] != float64(1) {
			t.Fatalf("revoke: %d %s", a.status, a.body)
		}
		if a := f.do(t, "GET", "/v1/me", "mehmet", ""); a.status != 401 {
			t.Errorf("revoked token: %d", a.status)
		}
		// A fresh login works again, and carries the new version.
		login := f.do(t, "POST", "/v1/auth/login", "", `{"username":"mehmet","password":"mehmet-password"}`)
		if login.status != 200 {
			t.Fatalf("login after revocation: %d %s", login.status, login.body)
		}
		if a := f.do(t, "GET", "/v1/me", login.json(t)["access_token"].(string), ""); a.status != 200 {
			t.Errorf("new token: %d %s", a.status, a.body)
		}

		// Disabled: the token dies and the password stops working.
		if a := f.do(t, "POST", "/v1/admin/users/"+f.users["ayse"].ID+"/disable", "admin", `{"reason":"phone stolen"}`); a.status != 200 || a.json(t)["disabled"] != true {
			t.Fatalf("disable: %d %s", a.status, a.body)
		}
		if a := f.do(t, "GET", "/v1/requests", "ayse", ""); a.status != 401 {
			t.Errorf("disabled account's token: %d", a.status)
		}
		if a := f.do(t, "POST", "/v1/auth/login", "", `{"username":"ayse","password":"ayse-password"}`); a.status != 401 {
			t.Errorf("disabled account's login: %d", a.status)
		}
		// A role change: the old token stops, the new role is what counts.
		if a := f.do(t, "POST", "/v1/admin/users/"+f.users["operator"].ID+"/role", "admin", `{"role":"customer"}`); a.status != 200 || a.json(t)["role"] != "customer" {
			t.Fatalf("set role: %d %s", a.status, a.body)
		}
		if a := f.do(t, "GET", "/v1/insurers", "operator", ""); a.status != 401 {
			t.Errorf("demoted operator's old token: %d", a.status)
		}
		tok := f.do(t, "POST", "/v1/auth/login", "", `{"username":"operator","password":"operator-password"}`).json(t)["access_token"].(string)
		if a := f.do(t, "GET", "/v1/insurers", tok, ""); a.status != 403 {
			t.Errorf("demoted operator's new token on a staff route: %d", a.status)
		}
	})
}

func intakeFilter(limit int) intake.Filter { return intake.Filter{Limit: limit} }

func TestAdminUsers(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		f := setup(t, engine, httpapi.Options{})
		// Only admins.
		for _, who := range []string{"ayse", "operator", "driver"} {
			if a := f.do(t, "GET", "/v1/admin/users", who, ""); a.status != 403 {
				t.Errorf("%s lists users: %d", who, a.status)
			}
			if a := f.do(t, "POST", "/v1/admin/users/"+f.users["ayse"].ID+"/role", who, `{"role":"admin"}`); a.status != 403 {
				t.Errorf("%s promotes: %d", who, a.status)
			}
		}
		created := f.do(t, "POST", "/v1/admin/users", "admin",
			`{"username":"Zeynep","password":"zeynep-password","role":"driver","name":"Zeynep Kaya","vehicle_plate":"06 ab 1234","capabilities":["tow"]}`)
		if created.status != 201 {
			t.Fatalf("create: %d %s", created.status, created.body)
		}
		z := created.json(t)
		if z["username"] != "zeynep" || z["driver"].(map[string]any)["vehicle_plate"] != "06AB1234" || created.header.Get("Location") != "/v1/admin/users/"+z["id"].(string) {
			t.Errorf("created %s (Location %s)", created.body, created.header.Get("Location"))
		}
		if strings.Contains(created.body, "argon2") || strings.Contains(created.body, "password") {
			t.Errorf("the answer shows the password or its hash: %s", created.body)
		}
		if a := f.do(t, "POST", "/v1/admin/users", "admin", `{"username":"zeynep","password":"zeynep-password","role":"customer"}`); a.status != 409 {
			t.Errorf("taken username: %d %s", a.status, a.body)
		}
		if a := f.do(t, "POST", "/v1/admin/users", "admin", `{"username":"x","password":"short","role":"pilot"}`); a.status != 422 ||
			!strings.Contains(a.body, `"username"`) || !strings.Contains(a.body, `"password"`) || !strings.Contains(a.body, `"role"`) {
			t.Errorf("bad creation: %d %s", a.status, a.body)
		}
		if a := f.do(t, "GET", "/v1/admin/users/"+z["id"].(string), "admin", ""); a.status != 200 || a.json(t)["name"] != "Zeynep Kaya" {
			t.Errorf("read: %d %s", a.status, a.body)
		}
		if a := f.do(t, "GET", "/v1/admin/users/usr_nope", "admin", ""); a.status != 404 {
			t.Errorf("unknown id: %d", a.status)
		}

		// Lists: filters, pages, and one rule for unknown parameters.
		list := func(query string) (int, []string, string) {
			a := f.do(t, "GET", "/v1/admin/users"+query, "admin", "")
			if a.status != 200 {
				return a.status, nil, a.body
			}
			var body struct {
				Items []struct {
					Username string `json:"username"`
				} `json:"items"`
				NextCursor *string `json:"next_cursor"`
			}
			json.Unmarshal([]byte(a.body), &body)
			var names []string
			for _, it := range body.Items {
				names = append(names, it.Username)
			}
			next := ""
			if body.NextCursor != nil {
				next = *body.NextCursor
			}
			return 200, names, next
		}
		if _, names, _ := list("?role=customer"); strings.Join(names, ",") != "mehmet,ayse" {
			t.Errorf("customers: %v", names)
		}
		f.do(t, "POST", "/v1/admin/users/"+f.users["mehmet"].ID+"/disable", "admin", "")
		if _, names, _ := list("?disabled=true"); strings.Join(names, ",") != "mehmet" {
			t.Errorf("disabled: %v", names)
		}
		_, first, next := list("?limit=2")
		_, second, _ := list("?limit=2&cursor=" + url.QueryEscape(next))
		if len(first) != 2 || len(second) != 2 || first[0] != "zeynep" || first[1] == second[0] {
			t.Errorf("pages %v then %v", first, second)
		}
		for _, q := range []string{"?rol=customer", "?role=pilot", "?disabled=maybe", "?limit=0", "?cursor=abc", "?role=customer&role=admin"} {
			if status, _, body := list(q); status != 422 {
				t.Errorf("%s: %d %s", q, status, body)
			}
		}

		// An admin cannot lock itself out.
		if a := f.do(t, "POST", "/v1/admin/users/"+f.users["admin"].ID+"/disable", "admin", ""); a.status != 409 {
			t.Errorf("self-disable: %d %s", a.status, a.body)
		}
		if a := f.do(t, "POST", "/v1/admin/users/"+f.users["admin"].ID+"/role", "admin", `{"role":"customer"}`); a.status != 409 {
			t.Errorf("self-demotion: %d %s", a.status, a.body)
		}
		// A new password: the old one stops working.
		if a := f.do(t, "POST", "/v1/admin/users/"+f.users["ayse"].ID+"/password", "admin", `{"password":"new-ayse-password"}`); a.status != 200 {
			t.Fatalf("reset: %d %s", a.status, a.body)
		}
		if a := f.do(t, "POST", "/v1/auth/login", "", `{"username":"ayse","password":"ayse-password"}`); a.status != 401 {
			t.Errorf("old password: %d", a.status)
		}
		if a := f.do(t, "POST", "/v1/auth/login", "", `{"username":"ayse","password":"new-ayse-password"}`); a.status != 200 {
			t.Errorf("new password: %d", a.status)
		}
	})
}

// The audit trail: who did what, from where, readable by admins only,
// filterable, and without a secret in it.
func TestAuditTrail(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		f := setup(t, engine, httpapi.Options{})
		f.do(t, "POST", "/v1/auth/login", "", `{"username":"ayse","password":"wrong-password"}`)
		f.do(t, "POST", "/v1/auth/login", "", `{"username":"ayse","password":"ayse-password"}`, "X-Request-Id", "login-rid-1")
		f.do(t, "POST", "/v1/admin/users/"+f.users["mehmet"].ID+"/role", "admin", `{"role":"operator"}`)
		created := f.do(t, "POST", "/v1/requests", "ayse", validBody)
		reqID := created.json(t)["id"].(string)
		if a := f.do(t, "POST", "/v1/requests/"+reqID+"/insurance", "operator", `{"decision":"waived","reason":"goodwill"}`); a.status != 200 {
			t.Fatalf("decide: %d %s", a.status, a.body)
		}
		ghost, _ := f.issuer.Issue(identity.Principal{UserID: id.New("usr", time.Now()), Role: identity.Customer})
		f.do(t, "GET", "/v1/me", ghost, "")
		dead := deadletter.NewService(f.store, nil)
		if err := dead.Record(context.Background(), "notify", "EVENTS", "events.request.created", "msg_1", []byte(`{}`), errors.New("boom"), 5); err != nil {
			t.Fatal(err)
		}
		letters, _ := dead.List(context.Background(), "", 1)
		if a := f.do(t, "POST", "/v1/admin/dead-letters/"+letters[0].ID+"/retry", "operator", ""); a.status != 202 {
			t.Fatalf("re-drive: %d %s", a.status, a.body)
		}

		for _, who := range []string{"operator", "ayse"} {
			if a := f.do(t, "GET", "/v1/admin/audit", who, ""); a.status != 403 {
				t.Errorf("%s reads the audit trail: %d", who, a.status)
			}
		}
		trail := func(query string) []map[string]any {
			t.Helper()
			a := f.do(t, "GET", "/v1/admin/audit"+query, "admin", "")
			if a.status != 200 {
				t.Fatalf("audit%s: %d %s", query, a.status, a.body)
			}
			if strings.Contains(a.body, "ayse-password") || strings.Contains(a.body, "wrong-password") || strings.Contains(a.body, "argon2") {
				t.Errorf("a secret in the trail: %s", a.body)
			}
			var out []map[string]any
			for _, it := range a.json(t)["items"].([]any) {
				out = append(out, it.(map[string]any))
			}
			return out
		}
		ayse := f.users["ayse"].ID
		byAction := map[string]map[string]any{}
		for _, e := range trail("?target=" + ayse) {
			byAction[e["action"].(string)] = e
		}
		if e := byAction["login.failed"]; e == nil || e["address"] != "127.0.0.1" || e["details"].(map[string]any)["reason"] != "password" {
			t.Errorf("failed login: %v", e)
		}
		if e := byAction["login.succeeded"]; e == nil || e["actor_id"] != ayse || e["request_id"] != "login-rid-1" {
			t.Errorf("login: %v", e)
		}
		role := trail("?action=user.role_changed")
		if len(role) != 1 || role[0]["actor_id"] != f.users["admin"].ID || role[0]["target"] != f.users["mehmet"].ID ||
			role[0]["details"].(map[string]any)["to"] != "operator" {
			t.Errorf("role change: %v", role)
		}
		overrides := trail("?actor=" + f.users["operator"].ID)
		if len(overrides) != 2 || overrides[0]["action"] != "dead_letter.redriven" || overrides[0]["target"] != letters[0].ID ||
			overrides[1]["action"] != "insurance.decided" || overrides[1]["target"] != reqID ||
			overrides[1]["details"].(map[string]any)["decision"] != "waived" {
			t.Errorf("operator's overrides: %v", overrides)
		}
		if refused := trail("?action=token.refused"); len(refused) != 1 || refused[0]["details"].(map[string]any)["reason"] != "unknown_user" {
			t.Errorf("token refusal: %v", refused)
		}
		if all := trail("?limit=2"); len(all) != 2 {
			t.Errorf("limit 2: %d items", len(all))
		}
		future := url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339))
		if got := trail("?from=" + future); len(got) != 0 {
			t.Errorf("from the future: %v", got)
		}
		for _, q := range []string{"?who=x", "?action=made.up", "?from=yesterday", "?limit=501", "?cursor=x"} {
			if a := f.do(t, "GET", "/v1/admin/audit"+q, "admin", ""); a.status != 422 {
				t.Errorf("%s: %d", q, a.status)
			}
		}
	})
}

// Logins past the failed-login back-off get 429 with Retry-After before
// any hashing; the same password from another address is still let in.
func TestLoginBackoff(t *testing.T) {
	f := setup(t, "sqlite", httpapi.Options{TrustedProxies: loopback(t)})
	from := func(addr, body string) answer {
		return f.do(t, "POST", "/v1/auth/login", "", body, "X-Forwarded-For", addr)
	}
	var last answer
	for range 12 {
		last = from("198.51.100.7", `{"username":"ayse","password":"guess"}`)
		if last.status == 429 {
			break
		}
	}
	if last.status != 429 || last.header.Get("Retry-After") == "" || !strings.Contains(last.body, "login-throttled") {
		t.Fatalf("guessing: last %d %q %s", last.status, last.header.Get("Retry-After"), last.body)
	}
	if a := from("198.51.100.7", `{"username":"ayse","password":"ayse-password"}`); a.status != 429 {
		t.Errorf("the right password from the guessing address during its wait: %d", a.status)
	}
	if a := from("203.0.113.5", `{"username":"ayse","password":"ayse-password"}`); a.status != 200 {
		t.Errorf("the owner from another address: %d %s", a.status, a.body)
	}
}

func loopback(t *testing.T) []*net.IPNet {
	_, n, err := net.ParseCIDR("127.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	return []*net.IPNet{n}
}
