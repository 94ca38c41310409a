package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/auth"
	"github.com/yolda/yolda/internal/httpapi"
)

// trackingToken issues a tracking link's token for requestID acting for
// owner, with the fixture's secret.
func (f *fixture) trackingToken(t testing.TB, requestID, owner string) string {
	t.Helper()
	tok, _, err := f.links.Issue(requestID, owner)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// createRequest makes a request as user and returns its id.
func (f *fixture) createRequest(t *testing.T, user string) string {
	t.Helper()
	a := f.do(t, "POST", "/v1/requests", user, validBody)
	if a.status != http.StatusAccepted {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	return a.json(t)["id"].(string)
}

func linkOf(t *testing.T, f *fixture, user, requestID string) (url, token string) {
	t.Helper()
	a := f.do(t, "POST", "/v1/requests/"+requestID+"/tracking-link", user, "")
	if a.status != http.StatusCreated {
		t.Fatalf("tracking link as %s: %d %s", user, a.status, a.body)
	}
	m := a.json(t)
	if cc := a.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("tracking link answer Cache-Control %q, want no-store", cc)
	}
	return m["url"].(string), m["token"].(string)
}

// TestTrackingLinkScope is the tracking routes' authorisation matrix: a
// link reads and cancels its own request and nothing else; no access
// token opens the tracking routes, and no tracking token opens the rest of
// the API.
func TestTrackingLinkScope(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		f := setup(t, engine, httpapi.Options{})
		mine, other := f.createRequest(t, "ayse"), f.createRequest(t, "mehmet")
		// sibling is the same customer's: the link still does not reach it.
		sibling := f.createRequest(t, "ayse")
		url, tok := linkOf(t, f, "ayse", mine)
		if want := "/track/" + mine + "#t=" + tok; url != want {
			t.Errorf("url %q, want %q", url, want)
		}

		cases := []struct {
			name, method, path, token, body string
			status                          int
			has                             []string
			hasnt                           []string
		}{
			{name: "own request", method: "GET", path: "/v1/track/" + mine, token: tok, status: 200,
				has:   []string{`"id":"` + mine + `"`, `"status":"dispatching"`, `"can_cancel":true`, `"link_expires_at"`},
				hasnt: []string{"POL-123456", "+905551112233", "hazard lights", "owner"}},
			{name: "another request", method: "GET", path: "/v1/track/" + other, token: tok, status: 404},
			{name: "cancel another", method: "POST", path: "/v1/track/" + other + "/cancel", token: tok, body: `{}`, status: 404},
			{name: "the same customer's other request", method: "GET", path: "/v1/track/" + sibling, token: tok, status: 404},
			{name: "cancel the same customer's other request", method: "POST", path: "/v1/track/" + sibling + "/cancel", token: tok, body: `{}`, status: 404},
			{name: "no token", method: "GET", path: "/v1/track/" + mine, status: 401},
			{name: "access token of the owner", method: "GET", path: "/v1/track/" + mine, token: f.tokens["ayse"], status: 401},
			{name: "access token of an operator", method: "GET", path: "/v1/track/" + mine, token: f.tokens["operator"], status: 401},
			{name: "tracking token on the API", method: "GET", path: "/v1/requests/" + mine, token: tok, status: 401},
			{name: "tracking token lists nothing", method: "GET", path: "/v1/requests", token: tok, status: 401},
			{name: "tracking token makes no link", method: "POST", path: "/v1/requests/" + mine + "/tracking-link", token: tok, status: 401},
			{name: "a stranger's link", method: "POST", path: "/v1/requests/" + other + "/tracking-link", token: f.tokens["ayse"], status: 404},
			{name: "a driver makes no link", method: "POST", path: "/v1/requests/" + mine + "/tracking-link", token: f.tokens["driver"], status: 403},
		}
		for _, c := range cases {
			a := f.do(t, c.method, c.path, c.token, c.body)
			if a.status != c.status {
				t.Errorf("%s: %d %s, want %d", c.name, a.status, a.body, c.status)
				continue
			}
			for _, s := range c.has {
				if !strings.Contains(a.body, s) {
					t.Errorf("%s: no %s in %s", c.name, s, a.body)
				}
			}
			for _, s := range c.hasnt {
				if strings.Contains(a.body, s) {
					t.Errorf("%s: %s leaks into %s", c.name, s, a.body)
				}
			}
		}
		// Another request's link answers exactly as a missing request.
		missing := f.do(t, "GET", "/v1/track/req_01JDQ3M6Y9B1X4G0ZC5V7N2K8P", tok, "")
		theirs := f.do(t, "GET", "/v1/track/"+other, tok, "")
		if a, b := problemShape(t, missing), problemShape(t, theirs); a != b {
			t.Errorf("another request and a missing one differ:\n  %s\n  %s", a, b)
		}

		// The link cancels its own request, as its customer.
		a := f.do(t, "POST", "/v1/track/"+mine+"/cancel", tok, `{"reason":"found help"}`)
		if a.status != 200 || !strings.Contains(a.body, `"status":"cancelled"`) || !strings.Contains(a.body, `"can_cancel":false`) {
			t.Fatalf("cancel by link: %d %s", a.status, a.body)
		}
		if a := f.do(t, "GET", "/v1/requests/"+mine, "ayse", ""); !strings.Contains(a.body, `"status":"cancelled"`) {
			t.Errorf("the owner does not see the cancellation: %s", a.body)
		}
		if a := f.do(t, "GET", "/v1/requests/"+other, "mehmet", ""); !strings.Contains(a.body, `"status":"dispatching"`) {
			t.Errorf("the other request changed: %s", a.body)
		}
		// A staff member's link acts for the request's owner, as a
		// customer: it cannot cancel what a customer may no longer cancel.
		opsURL, _ := linkOf(t, f, "operator", other)
		if !strings.HasPrefix(opsURL, "/track/"+other+"#t=") {
			t.Errorf("operator's link %q", opsURL)
		}
	})
}

func TestTrackingLinkExpired(t *testing.T) {
	f := setup(t, "sqlite", httpapi.Options{})
	id := f.createRequest(t, "ayse")
	past, err := auth.NewTrackingLinks([]byte(testSecret), time.Hour, func() time.Time { return time.Now().Add(-2 * time.Hour) })
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := past.Issue(id, f.users["ayse"].ID)
	if err != nil {
		t.Fatal(err)
	}
	if a := f.do(t, "GET", "/v1/track/"+id, tok, ""); a.status != 401 {
		t.Errorf("expired link: %d %s, want 401", a.status, a.body)
	}
	if a := f.do(t, "POST", "/v1/track/"+id+"/cancel", tok, `{}`); a.status != 401 {
		t.Errorf("expired link cancels: %d %s, want 401", a.status, a.body)
	}
	if a := f.do(t, "GET", "/v1/requests/"+id, "ayse", ""); !strings.Contains(a.body, `"status":"dispatching"`) {
		t.Errorf("the request changed: %s", a.body)
	}
}
