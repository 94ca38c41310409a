package httpapi_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/auth"
	"github.com/yolda/yolda/internal/httpapi"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/warehouse"
	"github.com/yolda/yolda/internal/warehouse/duckdb"
	"github.com/yolda/yolda/internal/warehouse/warehousetest"
)

// reportsFixture is the API over a real DuckDB warehouse holding the
// conformance fixture, with a token per role.
func reportsFixture(t *testing.T, forward *url.URL) (*httptest.Server, map[identity.Role]string, warehousetest.Fixture) {
	t.Helper()
	st, err := duckdb.Open(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	svc, err := warehouse.New(st, warehouse.Options{SLA: warehousetest.SLA})
	if err != nil {
		t.Fatal(err)
	}
	f := warehousetest.NewFixture(3, 80, warehousetest.Start)
	if _, err := svc.LoadBatch(context.Background(), f.Events); err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewTokens([]byte("test-secret-test-secret-test-secret"), time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	toks := map[identity.Role]string{}
	for _, r := range []identity.Role{identity.Customer, identity.Driver, identity.Operator, identity.Admin} {
		toks[r], _ = tokens.Issue(identity.Principal{UserID: "usr_" + string(r), Username: string(r), Role: r})
	}
	deps := httpapi.Deps{Accounts: claimedAccounts{}, Tokens: tokens, Registry: prometheus.NewRegistry(), ReportsForward: forward}
	if forward == nil {
		deps.Reports = svc
	}
	srv := httptest.NewServer(httpapi.New(deps))
	t.Cleanup(srv.Close)
	return srv, toks, f
}

// claimedAccounts takes a verified token at its word: these tests are about
// reports, not accounts (whose resolution has its own tests).
type claimedAccounts struct{}

func (claimedAccounts) Login(context.Context, account.LoginAttempt) (account.User, error) {
	return account.User{}, account.ErrBadCredentials
}

func (claimedAccounts) Resolve(_ context.Context, p identity.Principal) (identity.Principal, error) {
	return p, nil
}

func call(t *testing.T, srv *httptest.Server, token, path, accept string) answer {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func TestReportEndpoints(t *testing.T) {
	srv, tok, f := reportsFixture(t, nil)
	rng := "from=2026-11-28&to=2026-12-30"
	for _, tc := range []struct {
		name   string
		role   identity.Role
		path   string
		status int
		want   []string // fragments of the body
	}{
		{"no token", "", "/v1/reports/requests", 401, []string{"unauthorized"}},
		{"customer", identity.Customer, "/v1/reports/requests", 403, []string{"forbidden"}},
		{"driver", identity.Driver, "/v1/reports/sla", 403, []string{"forbidden"}},
		{"operator", identity.Operator, "/v1/reports/requests?" + rng + "&group_by=province", 200, []string{`"province":"İstanbul"`, `"columns":["province","count"`}},
		{"admin", identity.Admin, "/v1/reports/insurers?" + rng, 200, []string{`"insurer":"anadolu"`, `"latency_p99_ms"`}},
		{"sla", identity.Operator, "/v1/reports/sla?" + rng + "&group_by=insurer,service_type", 200, []string{`"sla_share"`, `"arrive_p90_s"`}},
		{"breaches", identity.Operator, "/v1/reports/sla?" + rng + "&view=breaches&limit=2", 200, []string{`"truncated":true`, `"time_to_arrive_s"`, `"sla_minutes"`}},
		{"unknown dimension", identity.Operator, "/v1/reports/requests?group_by=province%3Bdrop%20table%20events", 422, []string{`"field":"group_by"`, "unknown dimension"}},
		{"dimension twice", identity.Operator, "/v1/reports/requests?group_by=hour,hour", 422, []string{"given twice"}},
		{"too many dimensions", identity.Operator, "/v1/reports/requests?group_by=hour,province,insurer,status,service_type", 422, []string{"at most 4"}},
		{"bad time", identity.Operator, "/v1/reports/requests?from=yesterday", 422, []string{`"field":"from"`}},
		{"backwards range", identity.Operator, "/v1/reports/requests?from=2026-12-01&to=2026-11-01", 422, []string{`"field":"to"`, "after from"}},
		{"range too long", identity.Operator, "/v1/reports/requests?from=2000-01-01&to=2026-01-01", 422, []string{"10 years"}},
		{"unknown parameter", identity.Operator, "/v1/reports/requests?province=Ankara", 422, []string{`"field":"province"`}},
		{"repeated parameter", identity.Operator, "/v1/reports/requests?from=2026-11-01&from=2026-11-02", 422, []string{"once"}},
		{"group_by on insurers", identity.Operator, "/v1/reports/insurers?group_by=province", 422, []string{`"field":"group_by"`}},
		{"limit without breaches", identity.Operator, "/v1/reports/sla?limit=5", 422, []string{`"field":"limit"`}},
		{"limit too big", identity.Operator, "/v1/reports/sla?view=breaches&limit=10001", 422, []string{`"field":"limit"`}},
		{"unknown view", identity.Operator, "/v1/reports/sla?view=raw", 422, []string{`"field":"view"`}},
		{"post", identity.Operator, "/v1/reports/requests", 405, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a answer
			if tc.name == "post" {
				req, _ := http.NewRequest("POST", srv.URL+tc.path, nil)
				req.Header.Set("Authorization", "Bearer "+tok[tc.role])
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				a.status = resp.StatusCode
			} else {
				a = call(t, srv, tok[tc.role], tc.path, "")
			}
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			for _, w := range tc.want {
				if !strings.Contains(a.body, w) {
					t.Errorf("body lacks %s: %s", w, a.body)
				}
			}
		})
	}

	t.Run("numbers are the oracle's", func(t *testing.T) {
		a := call(t, srv, tok[identity.Operator], "/v1/reports/requests?"+rng+"&group_by=province", "")
		var got struct {
			Rows []map[string]any `json:"rows"`
		}
		if err := json.Unmarshal([]byte(a.body), &got); err != nil {
			t.Fatal(err)
		}
		q, _ := warehouse.ParseQuery("2026-11-28", "2026-12-30", "province", time.Now(), nil)
		want := warehousetest.ExpectRequests(f, q)
		if len(got.Rows) != len(want) {
			t.Fatalf("%d rows, want %d", len(got.Rows), len(want))
		}
		for i, w := range want {
			if got.Rows[i]["province"] != w["province"] || int64(got.Rows[i]["count"].(float64)) != w["count"] {
				t.Errorf("row %d = %v, want %v", i, got.Rows[i], w)
			}
		}
	})

	t.Run("CSV when asked", func(t *testing.T) {
		a := call(t, srv, tok[identity.Operator], "/v1/reports/sla?"+rng+"&group_by=insurer", "text/csv, application/json;q=0.5")
		if a.status != 200 || !strings.HasPrefix(a.header.Get("Content-Type"), "text/csv") {
			t.Fatalf("status %d, content type %q", a.status, a.header.Get("Content-Type"))
		}
		recs, err := csv.NewReader(strings.NewReader(a.body)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(recs[0], ",") != "insurer,"+strings.Join(warehouse.SLAMeasures, ",") {
			t.Fatalf("header %v", recs[0])
		}
		if len(recs) != 4 || recs[1][0] != "allianz" {
			t.Fatalf("records %v, want a header and the three insurers in order", recs)
		}
		// JSON still wins when preferred.
		if j := call(t, srv, tok[identity.Operator], "/v1/reports/sla?"+rng, "application/json, text/csv;q=0.5"); !strings.HasPrefix(j.header.Get("Content-Type"), "application/json") {
			t.Fatalf("content type %q when JSON is preferred", j.header.Get("Content-Type"))
		}
	})
}

// TestReportsForwarded: an api without a warehouse passes report calls to
// the warehouse process as they came, token included, and answers 503 when
// that process is gone.
func TestReportsForwarded(t *testing.T) {
	warehouseSrv, tok, _ := reportsFixture(t, nil)
	target, _ := url.Parse(warehouseSrv.URL)
	apiSrv, _, _ := reportsFixture(t, target) // same token secret
	direct := call(t, warehouseSrv, tok[identity.Operator], "/v1/reports/requests?from=2026-11-28&group_by=insurer", "text/csv")
	fwd := call(t, apiSrv, tok[identity.Operator], "/v1/reports/requests?from=2026-11-28&group_by=insurer", "text/csv")
	if fwd.status != 200 || fwd.body != direct.body {
		t.Fatalf("forwarded: %d %q, direct: %q", fwd.status, fwd.body, direct.body)
	}
	if a := call(t, apiSrv, tok[identity.Customer], "/v1/reports/requests", ""); a.status != 403 {
		t.Fatalf("customer through the api: %d, want 403 before any forwarding", a.status)
	}
	warehouseSrv.Close()
	if a := call(t, apiSrv, tok[identity.Operator], "/v1/reports/requests", ""); a.status != 503 || !strings.Contains(a.body, "warehouse-unavailable") {
		t.Fatalf("warehouse gone: %d %s, want 503 warehouse-unavailable", a.status, a.body)
	}
}

func TestReportsWithoutWarehouse(t *testing.T) {
	tokens, _ := auth.NewTokens([]byte("test-secret-test-secret-test-secret"), time.Hour, nil)
	tok, _ := tokens.Issue(identity.Principal{UserID: "usr_op", Role: identity.Operator})
	srv := httptest.NewServer(httpapi.New(httpapi.Deps{Accounts: claimedAccounts{}, Tokens: tokens, Registry: prometheus.NewRegistry()}))
	defer srv.Close()
	if a := call(t, srv, tok, "/v1/reports/insurers", ""); a.status != 503 || !strings.Contains(a.body, "reports-elsewhere") {
		t.Fatalf("%d %s, want 503 reports-elsewhere", a.status, a.body)
	}
}
