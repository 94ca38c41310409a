package httpapi_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/auth"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/geo/memory"
	"github.com/yolda/yolda/internal/httpapi"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
)

var fleetNow = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

// setupFleet is setup with the fleet wired in: a provider, two drivers
// (a tow truck of acme and an independent van), a customer and an
// operator, a memory index and a fixed clock.
func setupFleet(t *testing.T, engine string) (*fixture, *memory.Index) {
	t.Helper()
	store := engines[engine](t)
	fstore := store.(fleet.Store)
	accounts, err := account.NewService(store, &account.Hasher{Memory: 64, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewTokens([]byte("test-secret-test-secret-test-secret"), time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	index := memory.New(memory.Options{})
	fl := fleet.NewService(fstore, index, fleet.Options{Now: func() time.Time { return fleetNow }})
	if _, err := fl.AddProvider(context.Background(), "acme", "Acme Çekici"); err != nil {
		t.Fatal(err)
	}
	svc := intake.NewService(store, intake.Options{})
	t.Cleanup(svc.Close)
	f := &fixture{store: store, users: map[string]account.User{}, tokens: map[string]string{}, issuer: tokens, intake: svc}
	for _, u := range []account.NewUser{
		{Username: "ayse", Password: "ayse-password", Role: identity.Customer},
		{Username: "operator", Password: "operator-password", Role: identity.Operator},
		{Username: "truck", Password: "driver-password", Role: identity.Driver, Name: "Ali Çekici", VehiclePlate: "34TOW01",
			Capabilities: []string{"tow", "jump_start"}, Provider: "acme"},
		{Username: "van", Password: "driver-password", Role: identity.Driver, VehiclePlate: "34VAN01", Capabilities: []string{"lockout"}},
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
	api := httpapi.New(httpapi.Deps{
		Intake: svc, Accounts: accounts, Tokens: tokens, Fleet: fl,
		Ready: func(context.Context) error { return nil }, Registry: prometheus.NewRegistry(),
	})
	f.srv = httptest.NewServer(api)
	t.Cleanup(f.srv.Close)
	return f, index
}

func location(lat, lng float64, at time.Time) string {
	return fmt.Sprintf(`{"lat": %v, "lng": %v, "heading": 90, "speed_kmh": 42.5, "accuracy_m": 8, "recorded_at": %q}`,
		lat, lng, at.Format(time.RFC3339))
}

func TestDriverEndpoints(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		f, index := setupFleet(t, engine)
		truck := f.users["truck"].ID
		type step struct {
			name, method, path, user, body string
			status                         int
			fragments                      []string
		}
		steps := []step{
			{"no token", "PUT", "/v1/drivers/me/availability", "", `{"availability":"online"}`, 401, nil},
			{"customer may not go online", "PUT", "/v1/drivers/me/availability", "ayse", `{"availability":"online"}`, 403, nil},
			{"operator has no me", "POST", "/v1/drivers/me/location", "operator", location(41, 29, fleetNow), 403, nil},
			{"unknown availability", "PUT", "/v1/drivers/me/availability", "truck", `{"availability":"asleep"}`, 422,
				[]string{`"field":"availability"`}},
			{"unknown field", "PUT", "/v1/drivers/me/availability", "truck", `{"availability":"online","mood":"good"}`, 422,
				[]string{`"field":"mood"`}},
			{"not JSON", "PUT", "/v1/drivers/me/availability", "truck", `online`, 400, nil},
			{"go online", "PUT", "/v1/drivers/me/availability", "truck", `{"availability":"online"}`, 200,
				[]string{`"availability":"online"`, truck}},
			{"position", "POST", "/v1/drivers/me/location", "truck", location(41.0082, 28.9784, fleetNow.Add(-5*time.Second)), 204, nil},
			{"position from the future", "POST", "/v1/drivers/me/location", "truck", location(41, 29, fleetNow.Add(time.Minute)), 422,
				[]string{`"field":"recorded_at"`, "future"}},
			{"position too old", "POST", "/v1/drivers/me/location", "truck", location(41, 29, fleetNow.Add(-time.Hour)), 422,
				[]string{`"field":"recorded_at"`, "older than"}},
			{"several bad fields", "POST", "/v1/drivers/me/location", "truck", `{"lat": 95, "lng": "east", "recorded_at": "now"}`, 422,
				[]string{`"field":"lng"`}},
			{"out of range", "POST", "/v1/drivers/me/location", "truck", `{"lat": 95, "lng": 200, "heading": 400, "recorded_at": "now"}`, 422,
				[]string{`"field":"lat"`, `"field":"lng"`, `"field":"heading"`, `"field":"recorded_at"`}},
			{"missing position", "POST", "/v1/drivers/me/location", "truck", `{"recorded_at": "2026-11-26T10:00:00Z"}`, 422,
				[]string{`"field":"lat"`, `"field":"lng"`}},
			{"van reports", "POST", "/v1/drivers/me/location", "van", location(41.02, 28.98, fleetNow), 204, nil},
			{"drivers may not list drivers", "GET", "/v1/drivers", "truck", "", 403, nil},
			{"customers may not list drivers", "GET", "/v1/drivers", "ayse", "", 403, nil},
			{"operator lists", "GET", "/v1/drivers", "operator", "", 200, []string{
				`"username":"truck"`, `"vehicle_plate":"34TOW01"`, `"capabilities":["tow","jump_start"]`,
				`"provider":{"code":"acme","name":"Acme Çekici"}`, `"availability":"online"`,
				`"position":{"lat":41.0082,"lng":28.9784,"at":"2026-11-26T09:59:55Z"}`, `"current_request_id":null`,
				`"username":"van"`, `"provider":null`, `"vehicle_kind":"service_van"`, `"next_cursor":null`}},
			{"filter online", "GET", "/v1/drivers?availability=online", "operator", "", 200, []string{`"username":"truck"`}},
			{"filter capability", "GET", "/v1/drivers?capability=lockout", "operator", "", 200, []string{`"username":"van"`}},
			{"filter provider", "GET", "/v1/drivers?provider=acme", "operator", "", 200, []string{`"username":"truck"`}},
			{"unknown parameter", "GET", "/v1/drivers?colour=red", "operator", "", 422, []string{`"field":"colour"`}},
			{"bad filter values", "GET", "/v1/drivers?availability=maybe&capability=fly&limit=0&cursor=xyz", "operator", "", 422,
				[]string{`"field":"availability"`, `"field":"capability"`, `"field":"limit"`, `"field":"cursor"`}},
			{"a request cursor is not a driver cursor", "GET", "/v1/drivers?cursor=djE6cmVxXzE", "operator", "", 422, []string{`"field":"cursor"`}},
		}
		for _, s := range steps {
			a := f.do(t, s.method, s.path, s.user, s.body)
			if a.status != s.status {
				t.Errorf("%s: %d, want %d\n%s", s.name, a.status, s.status, a.body)
				continue
			}
			for _, frag := range s.fragments {
				if !strings.Contains(a.body, frag) {
					t.Errorf("%s: answer lacks %s\n%s", s.name, frag, a.body)
				}
			}
			if s.status >= 400 && a.header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("%s: error answer is %q, not a problem document", s.name, a.header.Get("Content-Type"))
			}
		}
		// Filters leave the others out.
		for path, absent := range map[string]string{
			"/v1/drivers?availability=online": `"username":"van"`,
			"/v1/drivers?capability=tow":      `"username":"van"`,
			"/v1/drivers?provider=acme":       `"username":"van"`,
			"/v1/drivers?capability=lockout":  `"username":"truck"`,
		} {
			if a := f.do(t, "GET", path, "operator", ""); strings.Contains(a.body, absent) {
				t.Errorf("%s lists %s", path, absent)
			}
		}
		// Refused positions changed nothing: the index holds the accepted one.
		got, err := index.Lookup(context.Background(), []string{truck})
		if err != nil || len(got) != 1 || got[0].Fix.Lat != 41.0082 || !got[0].State.Online {
			t.Errorf("index: %+v %v", got, err)
		}
		// Pages: one driver each, then the end.
		a := f.do(t, "GET", "/v1/drivers?limit=1", "operator", "")
		next, _ := a.json(t)["next_cursor"].(string)
		if a.status != 200 || next == "" || len(a.json(t)["items"].([]any)) != 1 {
			t.Fatalf("page 1: %d %s", a.status, a.body)
		}
		b := f.do(t, "GET", "/v1/drivers?limit=1&cursor="+next, "operator", "")
		if b.status != 200 || len(b.json(t)["items"].([]any)) != 1 || b.json(t)["items"].([]any)[0].(map[string]any)["id"] == a.json(t)["items"].([]any)[0].(map[string]any)["id"] {
			t.Errorf("page 2: %d %s", b.status, b.body)
		}
		if b.json(t)["next_cursor"] != nil {
			t.Errorf("page 2 should be the last: %s", b.body)
		}
		doc := f.do(t, "GET", "/openapi.json", "", "").json(t)["paths"].(map[string]any)
		for path, method := range map[string]string{"/v1/drivers": "get", "/v1/drivers/me/availability": "put", "/v1/drivers/me/location": "post"} {
			if ops, _ := doc[path].(map[string]any); ops[method] == nil {
				t.Errorf("%s %s is not documented", method, path)
			}
		}
	})
}
