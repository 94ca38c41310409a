package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/audit"
	"github.com/yolda/yolda/internal/auth"
	"github.com/yolda/yolda/internal/deadletter"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/geo/memory"
	"github.com/yolda/yolda/internal/httpapi"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/notify"
	"github.com/yolda/yolda/internal/outbox"
	"github.com/yolda/yolda/internal/store/postgres"
	"github.com/yolda/yolda/internal/store/postgres/pgtest"
	"github.com/yolda/yolda/internal/store/sqlite"
)

// apiStore is what the API tests need of a store.
type apiStore interface {
	intake.Store
	account.Store
	deadletter.Store
	notify.Store
	PendingOutbox(ctx context.Context, limit int) ([]outbox.Message, error)
}

type fixture struct {
	srv *httptest.Server
	// ops serves the operations listener's handler.
	ops   *httptest.Server
	store apiStore
	users map[string]account.User
	// accounts is the account service behind the API.
	accounts *account.Service
	tokens   map[string]string
	issuer   *auth.Tokens
	intake   *intake.Service
	api      *httpapi.Server
	// registry holds the server's metrics.
	registry *prometheus.Registry
}

var engines = map[string]func(t testing.TB) apiStore{
	"sqlite": func(t testing.TB) apiStore {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "yolda.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	},
	"postgres": func(t testing.TB) apiStore {
		s, err := postgres.Open(context.Background(), pgtest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	},
}

// setup builds the real API over a real store with four accounts and a
// token for each. opts may change the edge's limits.
func setup(t testing.TB, engine string, opts httpapi.Options) *fixture {
	t.Helper()
	store := engines[engine](t)
	hasher := &account.Hasher{Memory: 64, Time: 1, Threads: 1} // fast for tests
	trail, err := audit.NewService(store.(audit.Store), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	accounts, err := account.NewService(store, hasher, account.WithAudit(trail))
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewTokens([]byte(testSecret), time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc := intake.NewService(store, intake.Options{Batch: intake.BatchOptions{MaxBatch: 32, Writers: 2}})
	t.Cleanup(svc.Close)
	f := &fixture{store: store, users: map[string]account.User{}, tokens: map[string]string{}, issuer: tokens, intake: svc, accounts: accounts}
	for _, u := range []account.NewUser{
		{Username: "ayse", Password: "ayse-password", Role: identity.Customer, Name: "Ayşe Yılmaz"},
		{Username: "mehmet", Password: "mehmet-password", Role: identity.Customer},
		{Username: "operator", Password: "operator-password", Role: identity.Operator},
		{Username: "admin", Password: "admin-password", Role: identity.Admin},
		{Username: "driver", Password: "driver-password", Role: identity.Driver, VehiclePlate: "34TOW01", Capabilities: []string{"tow"}},
	} {
		created, err := accounts.Add(context.Background(), u)
		if err != nil {
			t.Fatalf("add %s: %v", u.Username, err)
		}
		f.users[u.Username] = created
		tok, err := tokens.Issue(identity.Principal{UserID: created.ID, Username: created.Username, Role: created.Role})
		if err != nil {
			t.Fatal(err)
		}
		f.tokens[u.Username] = tok
	}
	f.registry = prometheus.NewRegistry()
	// Every dependency is wired, so that every route of the table is
	// served and the matrices generated from it cover them all.
	fl := fleet.NewService(store.(fleet.Store), memory.New(memory.Options{}), fleet.Options{})
	f.api = httpapi.New(httpapi.Deps{
		Intake: svc, Accounts: accounts, Admin: accounts, Audit: trail, Tokens: tokens, Fleet: fl,
		DeadLetters: deadletter.NewService(store, nil), Notifications: store,
		Ready: func(context.Context) error { return nil }, Registry: f.registry, Options: opts,
	})
	f.srv = httptest.NewServer(f.api)
	t.Cleanup(f.srv.Close)
	f.ops = httptest.NewServer(f.api.OpsHandler())
	t.Cleanup(f.ops.Close)
	return f
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (a answer) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(a.body), &m); err != nil {
		t.Fatalf("answer is not a JSON object: %v\n%s", err, a.body)
	}
	return m
}

func (f *fixture) do(t testing.TB, method, path, user, body string, headers ...string) answer {
	t.Helper()
	return f.doAt(t, f.srv.URL, method, path, user, body, headers...)
}

// doAt is do against another server of the fixture (f.ops).
func (f *fixture) doAt(t testing.TB, base, method, path, user, body string, headers ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		tok, ok := f.tokens[user]
		if !ok {
			tok = user // a raw token
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

const validBody = `{
  "service_type": "tow",
  "location": {"lat": 41.0082, "lng": 28.9784, "address": "Fatih, İstanbul", "province": "İstanbul", "district": "Fatih"},
  "destination": {"lat": 41.05, "lng": 29.01, "address": "Servis, Şişli"},
  "vehicle": {"plate": "34ABC123", "make": "Fiat", "model": "Egea", "type": "car"},
  "policy": {"insurer": "anadolu", "policy_number": "POL-123456"},
  "contact": {"name": "Ayşe Yılmaz", "phone": "+905551112233"},
  "notes": "Left lane, hazard lights on"
}`

func withBody(t *testing.T, edit func(m map[string]any)) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(validBody), &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, _ := json.Marshal(m)
	return string(b)
}

func forEachEngine(t *testing.T, fn func(t *testing.T, engine string)) {
	for name := range engines {
		t.Run(name, func(t *testing.T) { fn(t, name) })
	}
}

func TestCreateReadListCancel(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		f := setup(t, engine, httpapi.Options{})
		created := f.do(t, "POST", "/v1/requests", "ayse", validBody)
		if created.status != http.StatusAccepted {
			t.Fatalf("create: %d %s", created.status, created.body)
		}
		req := created.json(t)
		id, _ := req["id"].(string)
		if !strings.HasPrefix(id, "req_") || created.header.Get("Location") != "/v1/requests/"+id {
			t.Fatalf("id %q, Location %q", id, created.header.Get("Location"))
		}
		// No insurer is configured here, so dispatch starts at once and
		// the insurance question goes to manual review.
		if req["status"] != "dispatching" || req["insurance"].(map[string]any)["status"] != "manual_review" || req["assignment"] != nil {
			t.Errorf("new request: %s", created.body)
		}
		// The request and its three outbox messages are committed before 202.
		stored, err := f.store.Request(context.Background(), id)
		if err != nil {
			t.Fatalf("stored request: %v", err)
		}
		if stored.OwnerID != f.users["ayse"].ID || stored.Vehicle.Plate != "34ABC123" || stored.Location.Province != "İstanbul" {
			t.Errorf("stored request differs: %+v", stored)
		}
		msgs, _ := f.store.PendingOutbox(context.Background(), 100)
		subjects := map[string]bool{}
		for _, m := range msgs {
			var env outbox.Envelope
			if err := json.Unmarshal(m.Payload, &env); err != nil || env.RequestID != id || env.Version != 1 {
				t.Errorf("outbox envelope %s: %v %+v", m.Subject, err, env)
			}
			subjects[m.Subject] = true
		}
		for _, want := range []string{outbox.DispatchRequestSubject(id), "events.request.created", "events.request.insurance_checked"} {
			if !subjects[want] {
				t.Errorf("outbox lacks %s (has %v)", want, subjects)
			}
		}

		got := f.do(t, "GET", "/v1/requests/"+id, "ayse", "")
		if got.status != 200 || got.json(t)["id"] != id {
			t.Fatalf("read back: %d %s", got.status, got.body)
		}
		tl := got.json(t)["timeline"].([]any)
		if len(tl) != 2 || tl[0].(map[string]any)["status"] != "received" || tl[1].(map[string]any)["status"] != "dispatching" {
			t.Errorf("timeline: %v", tl)
		}
		// Another customer and an unassigned driver: 404, as if it did not exist.
		for _, who := range []string{"mehmet", "driver"} {
			if a := f.do(t, "GET", "/v1/requests/"+id, who, ""); a.status != 404 || a.header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("%s reading ayse's request: %d %s", who, a.status, a.body)
			}
		}
		if a := f.do(t, "GET", "/v1/requests/"+id, "operator", ""); a.status != 200 {
			t.Errorf("operator read: %d", a.status)
		}

		// Lists: ayse sees hers, mehmet none, the operator all.
		for user, want := range map[string]int{"ayse": 1, "mehmet": 0, "operator": 1, "driver": 0} {
			a := f.do(t, "GET", "/v1/requests", user, "")
			if a.status != 200 {
				t.Fatalf("%s list: %d %s", user, a.status, a.body)
			}
			items := a.json(t)["items"].([]any)
			if len(items) != want {
				t.Errorf("%s lists %d requests, want %d", user, len(items), want)
			}
			if _, ok := a.json(t)["next_cursor"]; !ok {
				t.Errorf("%s list lacks next_cursor", user)
			}
		}

		// mehmet cannot cancel it (404), ayse can, and not twice (409).
		if a := f.do(t, "POST", "/v1/requests/"+id+"/cancel", "mehmet", `{"reason":"mine now"}`); a.status != 404 {
			t.Errorf("mehmet cancel: %d %s", a.status, a.body)
		}
		a := f.do(t, "POST", "/v1/requests/"+id+"/cancel", "ayse", `{"reason":"found help"}`)
		if a.status != 200 || a.json(t)["status"] != "cancelled" {
			t.Fatalf("cancel: %d %s", a.status, a.body)
		}
		tl = a.json(t)["timeline"].([]any)
		if len(tl) != 3 || tl[2].(map[string]any)["status"] != "cancelled" || tl[2].(map[string]any)["reason"] != "found help" {
			t.Errorf("timeline after cancel: %v", tl)
		}
		if a := f.do(t, "POST", "/v1/requests/"+id+"/cancel", "ayse", ""); a.status != 409 || !strings.Contains(a.body, "conflict") {
			t.Errorf("second cancel: %d %s", a.status, a.body)
		}
		if a := f.do(t, "POST", "/v1/requests/"+id+"/cancel", "driver", ""); a.status != 403 {
			t.Errorf("driver cancel: %d %s", a.status, a.body)
		}
	})
}

func TestValidation(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		f := setup(t, engine, httpapi.Options{MaxBodyBytes: 4096})
		cases := []struct {
			name   string
			body   string
			status int
			fields []string
		}{
			{"lat out of range", withBody(t, func(m map[string]any) { m["location"].(map[string]any)["lat"] = 91 }), 422, []string{"location.lat"}},
			{"lng missing", withBody(t, func(m map[string]any) { delete(m["location"].(map[string]any), "lng") }), 422, []string{"location.lng"}},
			{"tow without destination", withBody(t, func(m map[string]any) { delete(m, "destination") }), 422, []string{"destination"}},
			{"unknown service", withBody(t, func(m map[string]any) { m["service_type"] = "teleport" }), 422, []string{"service_type"}},
			{"unknown vehicle type", withBody(t, func(m map[string]any) { m["vehicle"].(map[string]any)["type"] = "tank" }), 422, []string{"vehicle.type"}},
			{"unknown field", withBody(t, func(m map[string]any) { m["tip"] = 5 }), 422, []string{"tip"}},
			{"nested unknown field", withBody(t, func(m map[string]any) { m["location"].(map[string]any)["foo"] = 1 }), 422, []string{"location.foo"}},
			{"wrong type", withBody(t, func(m map[string]any) { m["location"].(map[string]any)["lat"] = "north" }), 422, []string{"location.lat"}},
			{"bad phone", withBody(t, func(m map[string]any) { m["contact"].(map[string]any)["phone"] = "call me" }), 422, []string{"contact.phone"}},
			{"long notes", withBody(t, func(m map[string]any) { m["notes"] = strings.Repeat("ş", 1001) }), 422, []string{"notes"}},
			{"many at once", `{"service_type":"tow","location":{"lat":100,"lng":200}}`, 422,
				[]string{"destination", "location.lat", "location.lng", "vehicle", "policy", "contact"}},
			{"not json", `{"service_type":`, 400, nil},
			{"two values", validBody + validBody, 400, nil},
			{"too large", withBody(t, func(m map[string]any) { m["notes"] = strings.Repeat("x", 5000) }), 413, nil},
			{"empty", ``, 400, nil},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				a := f.do(t, "POST", "/v1/requests", "ayse", tc.body)
				if a.status != tc.status {
					t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
				}
				if ct := a.header.Get("Content-Type"); ct != "application/problem+json" {
					t.Errorf("Content-Type %q", ct)
				}
				p := a.json(t)
				if p["status"] != float64(tc.status) || p["type"] == "" || p["title"] == "" {
					t.Errorf("problem lacks members: %s", a.body)
				}
				got := map[string]bool{}
				if errs, ok := p["errors"].([]any); ok {
					for _, e := range errs {
						got[e.(map[string]any)["field"].(string)] = true
					}
				}
				for _, field := range tc.fields {
					if !got[field] {
						t.Errorf("no error for field %s: %s", field, a.body)
					}
				}
			})
		}
		// Nothing was stored by any of them.
		page, err := f.store.Requests(context.Background(), intake.Filter{Limit: 10})
		if err != nil || len(page) != 0 {
			t.Errorf("bad bodies stored %d requests (err %v)", len(page), err)
		}
		if msgs, _ := f.store.PendingOutbox(context.Background(), 10); len(msgs) != 0 {
			t.Errorf("bad bodies left %d outbox rows", len(msgs))
		}
	})
}

func TestIdempotencyKey(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		f := setup(t, engine, httpapi.Options{})
		first := f.do(t, "POST", "/v1/requests", "ayse", validBody, "Idempotency-Key", "k-1")
		if first.status != 202 {
			t.Fatalf("first: %d %s", first.status, first.body)
		}
		// Same key, same body re-encoded (keys reordered, spaces): the first answer.
		reencoded := withBody(t, func(map[string]any) {})
		again := f.do(t, "POST", "/v1/requests", "ayse", reencoded, "Idempotency-Key", "k-1")
		if again.status != 202 || again.json(t)["id"] != first.json(t)["id"] || again.header.Get("Location") != first.header.Get("Location") {
			t.Errorf("replay: %d %s, want id %v", again.status, again.body, first.json(t)["id"])
		}
		if again.header.Get("Idempotent-Replayed") != "true" {
			t.Error("replay not marked Idempotent-Replayed")
		}
		other := f.do(t, "POST", "/v1/requests", "ayse", withBody(t, func(m map[string]any) { m["notes"] = "different" }), "Idempotency-Key", "k-1")
		if other.status != 422 || !strings.Contains(other.body, "Idempotency-Key") {
			t.Errorf("same key, other body: %d %s", other.status, other.body)
		}
		// Keys belong to their owner: mehmet's k-1 is a new request.
		mehmet := f.do(t, "POST", "/v1/requests", "mehmet", validBody, "Idempotency-Key", "k-1")
		if mehmet.status != 202 || mehmet.json(t)["id"] == first.json(t)["id"] {
			t.Errorf("another owner's key: %d %s", mehmet.status, mehmet.body)
		}
		for _, bad := range []string{strings.Repeat("k", 256), "tab\there"} {
			if a := f.do(t, "POST", "/v1/requests", "ayse", validBody, "Idempotency-Key", bad); a.status != 422 {
				t.Errorf("key %q: %d", bad, a.status)
			}
		}

		// Concurrent requests with one fresh key make one request.
		const n = 20
		ids := make(chan string, n)
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a := f.do(t, "POST", "/v1/requests", "ayse", validBody, "Idempotency-Key", "race-key")
				if a.status != 202 {
					t.Errorf("concurrent: %d %s", a.status, a.body)
					return
				}
				ids <- a.json(t)["id"].(string)
			}()
		}
		wg.Wait()
		close(ids)
		distinct := map[string]bool{}
		for id := range ids {
			distinct[id] = true
		}
		if len(distinct) != 1 {
			t.Errorf("%d concurrent calls with one key created %d requests", n, len(distinct))
		}
		all, _ := f.store.Requests(context.Background(), intake.Filter{OwnerID: f.users["ayse"].ID, Limit: 100})
		if len(all) != 2 {
			t.Errorf("ayse has %d requests, want 2 (k-1 and race-key)", len(all))
		}
	})
}

func TestListFiltersAndCursor(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		f := setup(t, engine, httpapi.Options{})
		provinces := []string{"İstanbul", "Ankara", "İzmir"}
		for i := range 12 {
			body := withBody(t, func(m map[string]any) {
				m["location"].(map[string]any)["province"] = provinces[i%3]
				if i%2 == 0 {
					m["service_type"] = "jump_start"
				}
			})
			if a := f.do(t, "POST", "/v1/requests", "ayse", body); a.status != 202 {
				t.Fatalf("create: %d %s", a.status, a.body)
			}
		}
		var seen []string
		cursor := ""
		for pages := 0; ; pages++ {
			path := "/v1/requests?limit=5&province=" + "%C4%B0stanbul"
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			a := f.do(t, "GET", path, "operator", "")
			if a.status != 200 {
				t.Fatalf("list: %d %s", a.status, a.body)
			}
			m := a.json(t)
			for _, it := range m["items"].([]any) {
				r := it.(map[string]any)
				if r["location"].(map[string]any)["province"] != "İstanbul" {
					t.Errorf("filter leaked %v", r["location"])
				}
				seen = append(seen, r["id"].(string))
			}
			next, _ := m["next_cursor"].(string)
			if next == "" {
				break
			}
			cursor = next
			if pages > 5 {
				t.Fatal("pagination does not end")
			}
		}
		if len(seen) != 4 {
			t.Errorf("İstanbul requests over pages: %d, want 4", len(seen))
		}
		for i := 1; i < len(seen); i++ {
			if seen[i] >= seen[i-1] {
				t.Errorf("not newest first: %v", seen)
			}
		}
		a := f.do(t, "GET", "/v1/requests?service_type=jump_start&status=dispatching,cancelled", "operator", "")
		if n := len(a.json(t)["items"].([]any)); n != 6 {
			t.Errorf("jump_start requests: %d, want 6", n)
		}
		for _, bad := range []string{"status=lost", "limit=0", "limit=501", "cursor=zzz", "from=yesterday", "colour=red", "service_type=teleport"} {
			a := f.do(t, "GET", "/v1/requests?"+bad, "operator", "")
			if a.status != 422 || !strings.Contains(a.body, `"field"`) {
				t.Errorf("%s: %d %s", bad, a.status, a.body)
			}
		}
	})
}

func TestAuthentication(t *testing.T) {
	f := setup(t, "sqlite", httpapi.Options{IPRate: 1, IPBurst: 8})
	a := f.do(t, "POST", "/v1/auth/login", "", `{"username":"ayse","password":"ayse-password"}`)
	if a.status != 200 {
		t.Fatalf("login: %d %s", a.status, a.body)
	}
	m := a.json(t)
	if m["token_type"] != "Bearer" || m["role"] != "customer" || m["expires_in"] != float64(3600) {
		t.Errorf("login answer: %s", a.body)
	}
	if me := f.do(t, "GET", "/v1/me", m["access_token"].(string), ""); me.status != 200 || me.json(t)["username"] != "ayse" {
		t.Errorf("token from login does not work: %d %s", me.status, me.body)
	}
	for _, body := range []string{`{"username":"ayse","password":"wrong-password"}`, `{"username":"nobody","password":"ayse-password"}`} {
		if a := f.do(t, "POST", "/v1/auth/login", "", body); a.status != 401 {
			t.Errorf("bad login %s: %d", body, a.status)
		}
	}
	if a := f.do(t, "POST", "/v1/auth/login", "", `{"username":"ayse"}`); a.status != 422 {
		t.Errorf("login without password: %d", a.status)
	}
	expired, _ := auth.NewTokens([]byte("test-secret-test-secret-test-secret"), time.Minute, func() time.Time { return time.Now().Add(-time.Hour) })
	old, _ := expired.Issue(identity.Principal{UserID: f.users["ayse"].ID, Role: identity.Customer})
	forger, _ := auth.NewTokens([]byte("another-secret-another-secret-xxxx"), time.Hour, nil)
	forged, _ := forger.Issue(identity.Principal{UserID: f.users["ayse"].ID, Role: identity.Admin})
	for name, tok := range map[string]string{"missing": "", "garbage": "abc.def.ghi", "expired": old, "forged": forged,
		"alg none": "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4Iiwicm9sZSI6ImFkbWluIiwiZXhwIjo0MTAyNDQ0ODAwfQ."} {
		a := f.do(t, "GET", "/v1/requests", tok, "")
		if tok == "" {
			a = f.do(t, "GET", "/v1/requests", "", "")
		}
		if a.status != 401 || a.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s token: %d %s", name, a.status, a.body)
		}
	}
	// A driver may not create requests.
	if a := f.do(t, "POST", "/v1/requests", "driver", validBody); a.status != 403 {
		t.Errorf("driver create: %d", a.status)
	}
	// Login is rate limited per address: the burst passes, then 429 with Retry-After.
	var limited answer
	for range 20 {
		limited = f.do(t, "POST", "/v1/auth/login", "", `{"username":"ayse","password":"wrong-password"}`)
		if limited.status == 429 {
			break
		}
	}
	if limited.status != 429 || limited.header.Get("Retry-After") == "" {
		t.Errorf("login flood: last status %d, Retry-After %q", limited.status, limited.header.Get("Retry-After"))
	}
}

func TestUserRateLimit(t *testing.T) {
	f := setup(t, "sqlite", httpapi.Options{UserRate: 1, UserBurst: 3})
	codes := map[int]int{}
	for range 6 {
		codes[f.do(t, "GET", "/v1/requests", "ayse", "").status]++
	}
	if codes[200] != 3 || codes[429] != 3 {
		t.Errorf("with a burst of 3: %v", codes)
	}
	// Another identity has its own bucket.
	if a := f.do(t, "GET", "/v1/requests", "mehmet", ""); a.status != 200 {
		t.Errorf("mehmet limited by ayse's use: %d", a.status)
	}
}

func TestEdgeProblems(t *testing.T) {
	f := setup(t, "sqlite", httpapi.Options{})
	cases := []struct {
		method, path, user string
		status             int
		allow              string
	}{
		{"GET", "/no/such/thing", "", 404, ""},
		{"GET", "/v1/requests/req_01JDQ3M6Y9B1X4G0ZC5V7N2K8P", "ayse", 404, ""},
		{"GET", "/v1/requests/not-an-id", "ayse", 404, ""},
		{"DELETE", "/v1/requests", "ayse", 405, "GET, POST"},
		{"PUT", "/healthz", "", 405, "GET"},
	}
	for _, tc := range cases {
		a := f.do(t, tc.method, tc.path, tc.user, "")
		if a.status != tc.status || a.header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s: %d %q %s", tc.method, tc.path, a.status, a.header.Get("Content-Type"), a.body)
		}
		if tc.allow != "" && a.header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, a.header.Get("Allow"), tc.allow)
		}
		if a.header.Get("X-Request-Id") == "" || !strings.Contains(a.body, a.header.Get("X-Request-Id")) {
			t.Errorf("%s %s: request id missing from header or problem", tc.method, tc.path)
		}
	}
	a := f.do(t, "GET", "/healthz", "", "", "X-Request-Id", "trace-me-123")
	if a.status != 200 || a.header.Get("X-Request-Id") != "trace-me-123" {
		t.Errorf("healthz: %d, request id %q", a.status, a.header.Get("X-Request-Id"))
	}
	if a := f.do(t, "GET", "/readyz", "", ""); a.status != 200 {
		t.Errorf("readyz: %d", a.status)
	}
	f.do(t, "POST", "/v1/requests", "ayse", validBody)
	m := get(t, f.ops.URL+"/metrics")
	if m.status != 200 || !strings.Contains(m.body, `yolda_http_requests_total{code="202",method="POST",route="/v1/requests"} 1`) ||
		!strings.Contains(m.body, `yolda_http_request_duration_seconds_bucket{method="POST",route="/v1/requests"`) {
		t.Errorf("metrics lack the per-route series:\n%.2000s", m.body)
	}
}

// blockingIntake holds List calls until released: a request that is
// really in flight, past its body.
type blockingIntake struct {
	httpapi.Intake
	entered chan struct{}
	release chan struct{}
}

func (b blockingIntake) List(ctx context.Context, who identity.Principal, f intake.Filter) (intake.Page, error) {
	b.entered <- struct{}{}
	<-b.release
	return intake.Page{}, nil
}

func TestLoadShedding(t *testing.T) {
	// One slot in flight: a request that holds it makes the next one 503.
	tokens, _ := auth.NewTokens([]byte("test-secret-test-secret-test-secret"), time.Hour, nil)
	held := blockingIntake{entered: make(chan struct{}), release: make(chan struct{})}
	srv := httptest.NewServer(httpapi.New(httpapi.Deps{
		Intake: held, Tokens: tokens, Accounts: trustingAccounts{}, Registry: prometheus.NewRegistry(), Options: httpapi.Options{MaxInFlight: 1},
	}))
	defer srv.Close()
	tok, _ := tokens.Issue(identity.Principal{UserID: "usr_1", Role: identity.Customer})
	call := func() (int, string) {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/requests", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0, ""
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	done := make(chan int, 1)
	go func() {
		code, _ := call()
		done <- code
	}()
	<-held.entered // the first request holds the slot
	if code, retry := call(); code != 503 || retry == "" {
		t.Errorf("second request while one is in flight: %d, Retry-After %q", code, retry)
	}
	close(held.release)
	if code := <-done; code != 200 {
		t.Errorf("the request in flight: %d", code)
	}
	go func() { <-held.entered }()
	if code, _ := call(); code != 200 {
		t.Errorf("after the slot is free: %d", code)
	}
}

func TestDeadLettersAdmin(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		f := setup(t, engine, httpapi.Options{})
		dead := deadletter.NewService(f.store, nil)
		if err := dead.Record(context.Background(), "notify", "EVENTS", "events.request.created", "msg_1", []byte(`{"id":"msg_1"}`), fmt.Errorf("boom"), 5); err != nil {
			t.Fatal(err)
		}
		for _, who := range []string{"ayse", "driver"} {
			if a := f.do(t, "GET", "/v1/admin/dead-letters", who, ""); a.status != 403 {
				t.Errorf("%s lists dead letters: %d", who, a.status)
			}
		}
		a := f.do(t, "GET", "/v1/admin/dead-letters", "operator", "")
		items, _ := a.json(t)["items"].([]any)
		if a.status != 200 || len(items) != 1 {
			t.Fatalf("list: %d %s", a.status, a.body)
		}
		l := items[0].(map[string]any)
		if l["error"] != "boom" || l["consumer"] != "notify" || l["redriven_at"] != nil {
			t.Errorf("letter: %v", l)
		}
		before, _ := f.store.PendingOutbox(context.Background(), 100)
		r := f.do(t, "POST", "/v1/admin/dead-letters/"+l["id"].(string)+"/retry", "operator", "")
		if r.status != 202 || r.json(t)["redriven_at"] == nil {
			t.Fatalf("retry: %d %s", r.status, r.body)
		}
		after, _ := f.store.PendingOutbox(context.Background(), 100)
		if len(after) != len(before)+1 || after[len(after)-1].Subject != "events.request.created" {
			t.Errorf("retry did not commit the message to the outbox")
		}
		if a := f.do(t, "POST", "/v1/admin/dead-letters/dlq_nope/retry", "operator", ""); a.status != 404 {
			t.Errorf("retry of unknown: %d", a.status)
		}
		if a := f.do(t, "GET", "/v1/admin/dead-letters?limit=0", "operator", ""); a.status != 422 {
			t.Errorf("bad limit: %d", a.status)
		}
	})
}

func TestNotificationsAreTheRequestOwners(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		f := setup(t, engine, httpapi.Options{})
		created := f.do(t, "POST", "/v1/requests", "ayse", validBody)
		id := created.json(t)["id"].(string)
		// Feed the request.created event to the notify worker by hand.
		msgs, _ := f.store.PendingOutbox(context.Background(), 100)
		worker := notify.NewWorker(f.store, nil)
		for _, m := range msgs {
			if m.Subject == "events.request.created" {
				if err := worker.Handle(context.Background(), m.Payload); err != nil {
					t.Fatal(err)
				}
				if err := worker.Handle(context.Background(), m.Payload); err != nil { // a redelivery
					t.Fatal(err)
				}
			}
		}
		a := f.do(t, "GET", "/v1/requests/"+id+"/notifications", "ayse", "")
		items, _ := a.json(t)["items"].([]any)
		if a.status != 200 || len(items) != 1 || items[0].(map[string]any)["template"] != "request.received" {
			t.Fatalf("ayse's notifications: %d %s", a.status, a.body)
		}
		if a := f.do(t, "GET", "/v1/requests/"+id+"/notifications", "mehmet", ""); a.status != 404 {
			t.Errorf("mehmet reads ayse's notifications: %d", a.status)
		}
	})
}

// TestMetricsOnlyOnTheOpsListener: /metrics is 404 on the API listener
// and 200 on the operations listener; probes answer on both; the API and
// its document only on the API listener.
func TestMetricsOnlyOnTheOpsListener(t *testing.T) {
	f := setup(t, "sqlite", httpapi.Options{})
	for path, want := range map[string][2]int{
		"/metrics":       {404, 200},
		"/healthz":       {200, 200},
		"/readyz":        {200, 200},
		"/openapi.json":  {200, 404},
		"/v1/requests":   {401, 404},
		"/debug/pprof/":  {404, 404},
		"/v1/auth/login": {405, 404},
		"/no/such/thing": {404, 404},
	} {
		if a := f.do(t, "GET", path, "", ""); a.status != want[0] {
			t.Errorf("API listener %s: %d, want %d", path, a.status, want[0])
		}
		if a := get(t, f.ops.URL+path); a.status != want[1] {
			t.Errorf("ops listener %s: %d, want %d", path, a.status, want[1])
		}
	}
}
