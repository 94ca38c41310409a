package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/auth"
	"github.com/yolda/yolda/internal/config"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/insurance/mockinsurer"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/loadgen"
	"github.com/yolda/yolda/internal/warehouse"
	"github.com/yolda/yolda/internal/warehouse/warehousetest"
)

// runProcess assembles p and runs its services until the test ends.
func runProcess(t *testing.T, p *process) {
	t.Helper()
	if err := p.assemble(t.Context()); err != nil {
		t.Fatal(err)
	}
	ss, err := p.services()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runServices(ctx, ss) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("services: %v", err)
		}
	})
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %s", what, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type groupKey struct{ province, insurer, status string }

// operationalCounts counts the requests of the operational store per
// province, insurer and status, through the intake service's list.
func operationalCounts(t *testing.T, p *process) map[groupKey]int64 {
	t.Helper()
	staff := identity.Principal{UserID: "system", Role: identity.Operator}
	out := map[groupKey]int64{}
	f := intake.Filter{Limit: intake.MaxLimit}
	for {
		page, err := p.requests.List(t.Context(), staff, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Items {
			out[groupKey{r.Location.Province, r.Policy.Insurer, string(r.Status)}]++
		}
		if page.NextCursor == "" {
			return out
		}
		f.Before = page.NextCursor
	}
}

func warehouseCounts(t *testing.T, svc *warehouse.Service) map[groupKey]int64 {
	t.Helper()
	q, err := warehouse.ParseQuery("", "", "province,insurer,status", time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	q.From = time.Now().Add(-24 * time.Hour)
	rep, err := svc.Requests(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	out := map[groupKey]int64{}
	for _, r := range rep.Rows {
		out[groupKey{r["province"].(string), r["insurer"].(string), r["status"].(string)}] = r["count"].(int64)
	}
	return out
}

// allReports is every report over the last day, for comparing two
// warehouses.
func allReports(t *testing.T, svc *warehouse.Service) map[string][]warehouse.Row {
	t.Helper()
	q := func(g string) warehouse.Query {
		q, err := warehouse.ParseQuery(time.Now().Add(-24*time.Hour).Truncate(time.Hour).Format(time.RFC3339), "", g, time.Now().Add(time.Hour).Truncate(time.Hour), nil)
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	out := map[string][]warehouse.Row{}
	for name, run := range map[string]func() (warehouse.Report, error){
		"requests by province, insurer, status": func() (warehouse.Report, error) { return svc.Requests(t.Context(), q("province,insurer,status")) },
		"requests by district":                  func() (warehouse.Report, error) { return svc.Requests(t.Context(), q("district,service_type")) },
		"sla by insurer":                        func() (warehouse.Report, error) { return svc.SLAReport(t.Context(), q("insurer")) },
		"insurers":                              func() (warehouse.Report, error) { return svc.Insurers(t.Context(), q("")) },
	} {
		rep, err := run()
		if err != nil {
			t.Fatal(err)
		}
		out[name] = rep.Rows
	}
	return out
}

// TestWarehouseMatchesOperationalDataAndRebuilds runs the platform in one
// process (SQLite, embedded broker, DuckDB warehouse, the insurance role
// against a mock insurer over HTTP), submits requests and cancels some,
// and checks that the warehouse's counts per province, insurer and status
// become the operational store's, and that its insurers report has the
// insurer's calls and their latency. Then it replays the stream into an
// empty warehouse, and re-derives the live one from its own events: both
// must give every report exactly as the live warehouse does.
func TestWarehouseMatchesOperationalDataAndRebuilds(t *testing.T) {
	const latency = 25 * time.Millisecond
	mock := mockinsurer.New(mockinsurer.Behaviour{Latency: latency})
	srv := httptest.NewServer(mock)
	t.Cleanup(func() { mock.Close(); srv.Close() })
	insurersFile := filepath.Join(t.TempDir(), "insurers.yaml")
	if err := os.WriteFile(insurersFile, []byte("insurers:\n  - code: anadolu\n    base_url: "+srv.URL+"\n    verify_before_dispatch: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := testProcess(t, "api,relay,notify,insurance,warehouse", func(c *config.Config) { c.InsurersFile = insurersFile })
	runProcess(t, p)
	accounts, err := account.NewService(p.store, &account.Hasher{Memory: 64, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	u, err := accounts.Add(t.Context(), account.NewUser{Username: "ayse", Password: "ayse-password", Role: identity.Customer})
	if err != nil {
		t.Fatal(err)
	}
	who := identity.Principal{UserID: u.ID, Username: u.Username, Role: u.Role}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 120 {
		var sub intake.Submission
		b, _ := json.Marshal(loadgen.RandomSubmission(rng, nil))
		if err := json.Unmarshal(b, &sub); err != nil {
			t.Fatal(err)
		}
		created, err := p.requests.Create(t.Context(), who, sub, "")
		if err != nil {
			t.Fatal(err)
		}
		if i%4 == 0 {
			if _, err := p.requests.Cancel(t.Context(), who, created.Request.ID, "changed my mind"); err != nil {
				t.Fatal(err)
			}
		}
	}
	// anadolu's checks settle (the others' insurers are not configured:
	// manual review at once, no call).
	eventually(t, "anadolu's checks to settle", func() (bool, string) {
		n := 0
		for k, c := range operationalCounts(t, p) {
			if k.insurer == "anadolu" && k.status == string(intake.StatusAwaitingInsurance) {
				n += int(c)
			}
		}
		return n == 0, fmt.Sprintf("%d awaiting insurance", n)
	})
	calls := mock.Stats().Calls
	if calls == 0 {
		t.Fatal("no request was checked with anadolu")
	}
	want := operationalCounts(t, p)
	eventually(t, "the insurers report to count anadolu's calls", func() (bool, string) {
		row := insurerRow(t, p.warehouse, "anadolu")
		return number(row["calls"]) == float64(calls), fmt.Sprintf("%v, the insurer answered %d calls", row, calls)
	})
	row := insurerRow(t, p.warehouse, "anadolu")
	if p50, p99 := number(row["latency_p50_ms"]), number(row["latency_p99_ms"]); p50 < float64(latency.Milliseconds()) || p99 < p50 || p99 > 30_000 {
		t.Errorf("anadolu's call latency: p50 %v ms, p99 %v ms; the insurer takes %s", p50, p99, latency)
	}
	if number(row["errors"]) != 0 || number(row["checks"]) < float64(calls) {
		t.Errorf("anadolu: %v after %d successful calls", row, calls)
	}
	eventually(t, "warehouse counts equal the operational ones", func() (bool, string) {
		got := warehouseCounts(t, p.warehouse)
		d := cmp.Diff(want, got, cmp.AllowUnexported(groupKey{}))
		return d == "", d
	})
	live := allReports(t, p.warehouse)
	if len(live["insurers"]) == 0 || len(live["requests by province, insurer, status"]) < 3 {
		t.Fatalf("the live reports are too thin to compare: %v", live)
	}

	// Replay into an empty warehouse.
	cfg := p.cfg
	st, _, err := openWarehouseStore(t.Context(), cfg, filepath.Join(t.TempDir(), "rebuilt.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rebuilt, err := warehouse.New(st, warehouse.Options{SLA: p.warehouse.SLA()})
	if err != nil {
		t.Fatal(err)
	}
	n, err := Replay(t.Context(), p.broker, time.Time{}, rebuilt)
	if err != nil {
		t.Fatal(err)
	}
	if n < 150 {
		t.Fatalf("replayed %d events, want every creation and cancellation", n)
	}
	if d := cmp.Diff(live, allReports(t, rebuilt)); d != "" {
		t.Errorf("replayed warehouse differs from the live one (-live +rebuilt):\n%s", d)
	}

	// Re-derive the live warehouse from its own events.
	if _, err := p.warehouse.RebuildFromWarehouse(t.Context()); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(live, allReports(t, p.warehouse)); d != "" {
		t.Errorf("re-derived warehouse differs (-before +after):\n%s", d)
	}
}

// insurerRow is insurer's row of the insurers report over the last day
// (nil when it has none).
func insurerRow(t *testing.T, svc *warehouse.Service, insurer string) warehouse.Row {
	t.Helper()
	q, err := warehouse.ParseQuery(time.Now().Add(-24*time.Hour).Format(time.RFC3339), "", "", time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := svc.Insurers(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Rows {
		if r["insurer"] == insurer {
			return r
		}
	}
	return nil
}

// number is a report cell as a float64 (-1 when it is not a number).
func number(v any) float64 {
	switch n := v.(type) {
	case int64:
		return float64(n)
	case int:
		return float64(n)
	case float64:
		return n
	}
	return -1
}

// TestReportsNeverOpenTheOperationalDatabase: a warehouse process whose
// operational database is down (nothing listens at its address) starts,
// and answers reports over HTTP, JSON and CSV.
func TestReportsNeverOpenTheOperationalDatabase(t *testing.T) {
	p := testProcess(t, "warehouse", func(c *config.Config) {
		c.DatabaseURL = "postgres://yolda@127.0.0.1:1/stopped?connect_timeout=1"
	})
	runProcess(t, p)
	if p.store != nil {
		t.Fatal("the warehouse process opened the operational store")
	}
	f := warehousetest.NewFixture(5, 60, time.Now().Add(-12*time.Hour).Truncate(time.Hour))
	if _, err := p.warehouse.LoadBatch(t.Context(), f.Events); err != nil {
		t.Fatal(err)
	}
	secret, err := auth.LoadOrCreateSecret(p.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	tokens, _ := auth.NewTokens(secret, time.Hour, nil)
	tok, _ := tokens.Issue(identity.Principal{UserID: "usr_op", Role: identity.Operator})
	h := p.api.ReportsHandler()
	for _, path := range []string{"/v1/reports/requests?group_by=province", "/v1/reports/sla?group_by=insurer", "/v1/reports/insurers", "/v1/reports/sla?view=breaches"} {
		for _, accept := range []string{"", "text/csv"} {
			req := httptest.NewRequest("GET", path, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Accept", accept)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("%s (%q): %d %s", path, accept, rec.Code, rec.Body)
			}
		}
	}
	req := httptest.NewRequest("GET", "/v1/reports/requests", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if want := fmt.Sprintf(`"count":%d`, len(f.Requests)); !strings.Contains(rec.Body.String(), want) {
		t.Fatalf("requests report %s, want %s", rec.Body, want)
	}
	// The process serves reports and probes only.
	req = httptest.NewRequest("GET", "/v1/requests", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound {
		t.Fatalf("GET /v1/requests on a warehouse process: %d, want 404", rec.Code)
	}
}

// TestRebuildCommand: `yolda warehouse rebuild --from-warehouse` re-derives
// the configured warehouse; a replay refuses a warehouse that holds events.
func TestRebuildCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Defaults()
	cfg.DataDir = dir
	st, _, err := openWarehouseStore(t.Context(), cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := warehouse.New(st, warehouse.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := warehousetest.NewFixture(9, 40, warehousetest.Start)
	if _, err := svc.LoadBatch(t.Context(), f.Events); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	var out, errs strings.Builder
	env := Env{Getenv: func(k string) string {
		if k == "YOLDA_DATA_DIR" {
			return dir
		}
		return ""
	}, Stdout: &out, Stderr: &errs}
	if err := Run(t.Context(), []string{"warehouse", "rebuild", "--from-warehouse"}, env); err != nil {
		t.Fatalf("rebuild --from-warehouse: %v (%s)", err, errs.String())
	}
	if want := fmt.Sprintf("re-derived %d request facts", len(f.Requests)); !strings.Contains(out.String(), want) {
		t.Fatalf("output %q, want %q", out.String(), want)
	}
	err = Run(t.Context(), []string{"warehouse", "rebuild"}, env)
	if !errors.Is(err, warehouse.ErrNotEmpty) {
		t.Fatalf("replay into a loaded warehouse: %v, want ErrNotEmpty", err)
	}
	if err := Run(t.Context(), []string{"warehouse", "rebuild", "--since", "yesterday"}, env); !errors.Is(err, ErrUsage) {
		t.Fatalf("bad --since: %v, want ErrUsage", err)
	}
}
