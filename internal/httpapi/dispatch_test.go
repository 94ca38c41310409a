package httpapi_test

import (
	"context"
	"encoding/json"
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
	"github.com/yolda/yolda/internal/dispatch"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/geo/memory"
	"github.com/yolda/yolda/internal/httpapi"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
	"github.com/yolda/yolda/internal/store/postgres"
	"github.com/yolda/yolda/internal/store/postgres/pgtest"
	"github.com/yolda/yolda/internal/store/sqlite"
	"github.com/yolda/yolda/internal/store/storetest"
)

var dispatchEngines = map[string]func(t *testing.T) storetest.DispatchStore{
	"sqlite": func(t *testing.T) storetest.DispatchStore {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "yolda.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	},
	"postgres": func(t *testing.T) storetest.DispatchStore {
		s, err := postgres.Open(context.Background(), pgtest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	},
}

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// dispatchFixture is the API with dispatch over a real store: a
// customer, an operator and three drivers (two online near Fatih).
type dispatchFixture struct {
	*fixture
	store  storetest.DispatchStore
	clock  *testClock
	worker *dispatch.Worker
	trail  *audit.Service
}

func setupDispatch(t *testing.T, engine string) *dispatchFixture {
	t.Helper()
	store := dispatchEngines[engine](t)
	clock := &testClock{t: time.Now().UTC().Truncate(time.Second)}
	accounts, err := account.NewService(store, &account.Hasher{Memory: 64, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewTokens([]byte("test-secret-test-secret-test-secret"), time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	index := memory.New(memory.Options{})
	fl := fleet.NewService(store, index, fleet.Options{Now: clock.Now, StaleAfter: time.Hour})
	requests := intake.NewService(store, intake.Options{Now: clock.Now, Offers: store})
	t.Cleanup(requests.Close)
	svc := dispatch.NewService(store, store, fl, index, nil, dispatch.ServiceOptions{Now: clock.Now})
	worker, err := dispatch.NewWorker(store, fl, dispatch.WorkerOptions{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	f := &dispatchFixture{fixture: &fixture{store: store, users: map[string]account.User{}, tokens: map[string]string{}, issuer: tokens, intake: requests},
		store: store, clock: clock, worker: worker}
	for i, u := range []account.NewUser{
		{Username: "ayse", Password: "ayse-password", Role: identity.Customer},
		{Username: "operator", Password: "operator-password", Role: identity.Operator},
		{Username: "driver", Password: "driver-password", Role: identity.Driver, VehiclePlate: "34TOW01", Capabilities: []string{"tow", "jump_start"}},
		{Username: "driver2", Password: "driver-password", Role: identity.Driver, VehiclePlate: "34TOW02", Capabilities: []string{"tow", "jump_start"}},
		{Username: "offline", Password: "driver-password", Role: identity.Driver, VehiclePlate: "34TOW03", Capabilities: []string{"tow"}},
	} {
		created, err := accounts.Add(context.Background(), u)
		if err != nil {
			t.Fatalf("add %s: %v", u.Username, err)
		}
		f.users[u.Username] = created
		p := identity.Principal{UserID: created.ID, Username: created.Username, Role: created.Role}
		if f.tokens[u.Username], err = tokens.Issue(p); err != nil {
			t.Fatal(err)
		}
		if u.Role == identity.Driver && u.Username != "offline" {
			if _, err := fl.SetAvailability(context.Background(), p, fleet.Online); err != nil {
				t.Fatal(err)
			}
			lat, lng := 41.0082+0.01*float64(i-1), 28.9784
			if _, err := fl.ReportPosition(context.Background(), p, fleet.PositionReport{Lat: &lat, Lng: &lng,
				RecordedAt: clock.Now().Format(time.RFC3339)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	trail, err := audit.NewService(store.(audit.Store), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.trail = trail
	api := httpapi.New(httpapi.Deps{Intake: requests, Accounts: accounts, Tokens: tokens, Dispatch: svc, Audit: trail,
		Ready: func(context.Context) error { return nil }, Registry: prometheus.NewRegistry()})
	f.srv = httptest.NewServer(api)
	t.Cleanup(f.srv.Close)
	return f
}

// dispatchJobs hands the outbox's dispatch jobs to the worker, as the relay
// and the dispatch consumer would.
func (f *dispatchFixture) dispatchJobs(t *testing.T) {
	t.Helper()
	var jobs []dispatch.Job
	if _, err := f.store.RelayOutbox(context.Background(), 1000, time.Minute, func(ms []outbox.Message) []outbox.Publication {
		ok := make([]outbox.Publication, len(ms))
		for i, m := range ms {
			ok[i] = outbox.Publication{Stream: "JOBS", StreamSeq: uint64(i + 1)}
			var env outbox.Envelope
			if strings.HasPrefix(m.Subject, outbox.SubjectDispatchRequest+".") && json.Unmarshal(m.Payload, &env) == nil {
				jobs = append(jobs, dispatch.Job{MessageID: env.ID, RequestID: env.RequestID})
			}
		}
		return ok
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.worker.Handle(context.Background(), jobs); err != nil {
		t.Fatal(err)
	}
}

// step is one call of a scenario and what it must answer.
type step struct {
	name, method, path, user, body string
	status                         int
	want                           []string // fragments of the body
}

func (f *dispatchFixture) run(t *testing.T, steps []step) {
	t.Helper()
	for _, s := range steps {
		got := f.do(t, s.method, s.path, s.user, s.body)
		if got.status != s.status {
			t.Errorf("%s: %s %s as %q = %d %s, want %d", s.name, s.method, s.path, s.user, got.status, got.body, s.status)
			continue
		}
		if s.status >= 400 && !strings.HasPrefix(got.header.Get("Content-Type"), "application/problem+json") {
			t.Errorf("%s: Content-Type %q, want a problem document", s.name, got.header.Get("Content-Type"))
		}
		for _, w := range s.want {
			if !strings.Contains(got.body, w) {
				t.Errorf("%s: body %s lacks %s", s.name, got.body, w)
			}
		}
	}
}

func TestDispatchAPI(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		f := setupDispatch(t, engine)
		created := f.do(t, "POST", "/v1/requests", "ayse", validBody)
		if created.status != http.StatusAccepted {
			t.Fatalf("create: %d %s", created.status, created.body)
		}
		reqID := created.json(t)["id"].(string)
		f.dispatchJobs(t)

		offers := f.do(t, "GET", "/v1/drivers/me/offers", "driver", "")
		var list struct {
			Items []dispatch.OfferView `json:"items"`
		}
		if err := json.Unmarshal([]byte(offers.body), &list); err != nil || len(list.Items) != 1 || list.Items[0].RequestID != reqID {
			t.Fatalf("offers: %d %s", offers.status, offers.body)
		}
		offer := list.Items[0].OfferID
		req := "/v1/requests/" + reqID
		f.run(t, []step{
			{"offers shape", "GET", "/v1/drivers/me/offers", "driver", "", 200,
				[]string{`"offer_id":"` + offer, `"service_type":"tow"`, `"location":{"lat":41.0082`, `"distance_m":`, `"eta_seconds":`, `"expires_at":`, `"next_cursor":null`}},
			{"the slower driver has none", "GET", "/v1/drivers/me/offers", "driver2", "", 200, []string{`"items":[]`}},
			{"offers are drivers'", "GET", "/v1/drivers/me/offers", "ayse", "", 403, nil},
			{"no token", "GET", "/v1/drivers/me/offers", "", "", 401, nil},
			{"offered driver reads the request", "GET", req, "driver", "", 200, []string{`"status":"dispatching"`}},
			{"another driver does not", "GET", req, "driver2", "", 404, nil},
			{"an offline driver does not", "GET", req, "offline", "", 404, nil},
			{"another driver's offer", "POST", "/v1/offers/" + offer + "/accept", "driver2", "", 404, nil},
			{"a made-up offer", "POST", "/v1/offers/ofr_nope/accept", "driver", "", 404, nil},
			{"customers do not accept", "POST", "/v1/offers/" + offer + "/accept", "ayse", "", 403, nil},
			{"accept", "POST", "/v1/offers/" + offer + "/accept", "driver", "", 200,
				[]string{`"status":"assigned"`, `"driver_id":"` + f.users["driver"].ID, `"vehicle_plate":"34TOW01"`}},
			{"accept a taken offer", "POST", "/v1/offers/" + offer + "/accept", "driver", "", 409, []string{`offer-taken`}},
			{"decline a taken offer", "POST", "/v1/offers/" + offer + "/decline", "driver", "", 409, nil},
			{"offers after accepting", "GET", "/v1/drivers/me/offers", "driver", "", 200, []string{`"items":[]`}},

			{"customers report no progress", "POST", req + "/progress", "ayse", `{"status":"en_route"}`, 403, nil},
			{"another driver's job", "POST", req + "/progress", "driver2", `{"status":"en_route"}`, 404, nil},
			{"unknown step", "POST", req + "/progress", "driver", `{"status":"lunch"}`, 422, []string{`"field":"status"`}},
			{"unknown field", "POST", req + "/progress", "driver", `{"status":"en_route","x":1}`, 422, []string{`"field":"x"`}},
			{"skipping a step", "POST", req + "/progress", "driver", `{"status":"arrived"}`, 409, nil},
			{"en route", "POST", req + "/progress", "driver", `{"status":"en_route"}`, 200, []string{`"status":"en_route"`}},
			{"arrived", "POST", req + "/progress", "driver", `{"status":"arrived"}`, 200, []string{`"status":"arrived"`}},

			{"drivers do not assign", "POST", req + "/assign", "driver", `{"driver_id":"` + f.users["driver2"].ID + `"}`, 403, nil},
			{"assign a request in progress", "POST", req + "/assign", "operator", `{"driver_id":"` + f.users["driver2"].ID + `"}`, 409, nil},
			{"in service", "POST", req + "/progress", "driver", `{"status":"in_service"}`, 200, nil},
			{"completed", "POST", req + "/progress", "driver", `{"status":"completed"}`, 200,
				[]string{`"status":"completed"`, `{"status":"received"`, `{"status":"en_route"`, `{"status":"arrived"`, `{"status":"in_service"`, `{"status":"completed"`}},
			{"after completion", "POST", req + "/progress", "driver", `{"status":"completed"}`, 409, nil},
		})

		// Operators assign by hand.
		second := f.do(t, "POST", "/v1/requests", "ayse", validBody).json(t)["id"].(string)
		f.dispatchJobs(t)
		offers = f.do(t, "GET", "/v1/drivers/me/offers", "driver", "")
		if err := json.Unmarshal([]byte(offers.body), &list); err != nil || len(list.Items) != 1 {
			t.Fatalf("offers for the second request: %s", offers.body)
		}
		req = "/v1/requests/" + second
		f.run(t, []step{
			{"unknown driver", "POST", req + "/assign", "operator", `{"driver_id":"usr_01JDQ3M6Y9B1X4G0ZC5V7N2K8P"}`, 422, []string{`"field":"driver_id"`}},
			{"not a driver", "POST", req + "/assign", "operator", `{"driver_id":"` + f.users["ayse"].ID + `"}`, 422, []string{`"field":"driver_id"`}},
			{"no driver", "POST", req + "/assign", "operator", `{}`, 422, []string{`"field":"driver_id"`}},
			{"by hand", "POST", req + "/assign", "operator", `{"driver_id":"` + f.users["driver2"].ID + `"}`, 200,
				[]string{`"status":"assigned"`, `"driver_id":"` + f.users["driver2"].ID, `"reason":"assigned by operator"`}},
			{"the open offer is withdrawn", "GET", "/v1/drivers/me/offers", "driver", "", 200, []string{`"items":[]`}},
			{"a busy driver", "POST", "/v1/requests/" + f.do(t, "POST", "/v1/requests", "ayse", validBody).json(t)["id"].(string) + "/assign",
				"operator", `{"driver_id":"` + f.users["driver2"].ID + `"}`, 409, []string{`driver-busy`}},
		})
		// The manual assignment is in the audit trail; the refused ones are not.
		assigned, err := f.trail.List(context.Background(), audit.Filter{Action: audit.RequestAssigned})
		if err != nil || len(assigned.Items) != 1 || assigned.Items[0].Target != second ||
			assigned.Items[0].ActorID != f.users["operator"].ID || assigned.Items[0].Details["driver_id"] != f.users["driver2"].ID {
			t.Errorf("manual assignments in the audit trail: %+v %v", assigned.Items, err)
		}

		// Decline, and an offer past its deadline.
		third := f.do(t, "POST", "/v1/requests", "ayse", validBody).json(t)["id"].(string)
		f.dispatchJobs(t)
		_ = json.Unmarshal([]byte(f.do(t, "GET", "/v1/drivers/me/offers", "driver", "").body), &list)
		if len(list.Items) != 1 {
			t.Fatalf("driver's offers: %+v", list.Items)
		}
		f.run(t, []step{{"decline", "POST", "/v1/offers/" + list.Items[0].OfferID + "/decline", "driver", "", 204, nil}})
		f.dispatchJobs(t) // the third request moves on; only the offline driver is left
		fourth := f.do(t, "POST", "/v1/requests", "ayse", validBody).json(t)["id"].(string)
		f.dispatchJobs(t)
		_ = json.Unmarshal([]byte(f.do(t, "GET", "/v1/drivers/me/offers", "driver", "").body), &list)
		if len(list.Items) != 1 || list.Items[0].RequestID != fourth {
			t.Fatalf("offers after the decline: %+v (third %s, fourth %s)", list.Items, third, fourth)
		}
		f.clock.Advance(31 * time.Second)
		f.run(t, []step{{"expired", "POST", "/v1/offers/" + list.Items[0].OfferID + "/accept", "driver", "", 409, []string{`offer-expired`}}})
	})
}
