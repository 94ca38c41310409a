// Package warehousetest is the conformance suite every warehouse engine
// passes: the same fixture, loaded in batches, out of order and twice,
// must give the same reports, equal to what an independent oracle computes
// from the fixture's truth.
package warehousetest

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/yolda/yolda/internal/warehouse"
)

// Open returns an empty warehouse for one test; the suite closes it.
type Open func(t *testing.T) warehouse.Store

// Start is when the fixture's first request is created.
var Start = time.Date(2026, 11, 28, 20, 0, 0, 0, time.UTC)

// SLA is the suite's arrival SLA: two insurers with their own, the third
// on the default.
var SLA = warehouse.SLA{ByInsurer: map[string]int{"anadolu": 30, "axa": 60}, DefaultMinutes: 45}

// Run runs the suite against the engine open returns.
func Run(t *testing.T, open Open) {
	f := NewFixture(7, 240, Start)
	ctx := context.Background()

	t.Run("reports match the oracle after loading out of order and twice", func(t *testing.T) {
		svc := newService(t, open)
		loadShuffled(t, svc, f, 1)
		checkReports(t, svc, f)
		// Loading everything again changes nothing.
		loadShuffled(t, svc, f, 2)
		checkReports(t, svc, f)
	})

	t.Run("a status change before its creation ends in the right row", func(t *testing.T) {
		svc := newService(t, open)
		r := f.Requests[0]
		var mine [][]byte
		for _, p := range f.Events {
			if requestOf(t, p) == r.ID {
				mine = append(mine, p)
			}
		}
		// Newest first: the completion arrives before the creation.
		for i := len(mine) - 1; i >= 0; i-- {
			if _, err := svc.LoadBatch(ctx, mine[i:i+1]); err != nil {
				t.Fatal(err)
			}
		}
		q := query(t, "province,status,insurer")
		got := reportRows(t, svc.Requests, q)
		want := []warehouse.Row{{"province": r.Province, "status": r.Status, "insurer": r.Insurer,
			"count": int64(1), "completed": b2i(r.Status == "completed"), "cancelled": b2i(r.Status == "cancelled"),
			"unfulfilled": b2i(r.Status == "unfulfilled"), "rejected": b2i(r.Status == "rejected")}}
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("fact after reversed delivery (-want +got):\n%s", d)
		}
	})

	t.Run("a malformed event fails alone", func(t *testing.T) {
		svc := newService(t, open)
		batch := [][]byte{[]byte(`{"not":"an envelope"}`), f.Events[0]}
		res, err := svc.LoadBatch(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		if res[0] == nil || res[1] != nil {
			t.Fatalf("results = %v, want an error for the first only", res)
		}
		rows := reportRows(t, svc.Requests, query(t, ""))
		if rows[0]["count"] != int64(1) {
			t.Fatalf("count = %v after loading one creation", rows[0]["count"])
		}
	})

	t.Run("rederiving from the events fact reproduces every report", func(t *testing.T) {
		svc := newService(t, open)
		loadShuffled(t, svc, f, 3)
		n, err := svc.RebuildFromWarehouse(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n != len(f.Requests) {
			t.Fatalf("rederived %d requests, want %d", n, len(f.Requests))
		}
		checkReports(t, svc, f)
	})

	t.Run("without insurers configured every SLA is the default", func(t *testing.T) {
		st := open(t)
		def := warehouse.SLA{DefaultMinutes: 50}
		svc, err := warehouse.New(st, warehouse.Options{SLA: def})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.LoadBatch(ctx, f.Events); err != nil {
			t.Fatal(err)
		}
		q := query(t, "insurer")
		q.SLA = def
		if d := cmp.Diff(ExpectSLA(f, q), reportRows(t, svc.SLAReport, q)); d != "" {
			t.Errorf("SLA report with the default only (-want +got):\n%s", d)
		}
		q = query(t, "")
		q.SLA = def
		if d := cmp.Diff(ExpectBreaches(f, q), reportRows(t, svc.Breaches, q)); d != "" {
			t.Errorf("breaches with the default only (-want +got):\n%s", d)
		}
	})

	t.Run("empty until the first event", func(t *testing.T) {
		st := open(t)
		svc, err := warehouse.New(st, warehouse.Options{SLA: SLA})
		if err != nil {
			t.Fatal(err)
		}
		if empty, err := st.Empty(ctx); err != nil || !empty {
			t.Fatalf("Empty() = %v, %v on a new warehouse", empty, err)
		}
		if _, err := svc.LoadBatch(ctx, f.Events[:1]); err != nil {
			t.Fatal(err)
		}
		if empty, err := st.Empty(ctx); err != nil || empty {
			t.Fatalf("Empty() = %v, %v after a load", empty, err)
		}
	})

	t.Run("no personal data is kept", func(t *testing.T) {
		st := open(t)
		svc, err := warehouse.New(st, warehouse.Options{SLA: SLA})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.LoadBatch(ctx, f.Events); err != nil {
			t.Fatal(err)
		}
		dump, ok := st.(interface {
			Dump(ctx context.Context) (string, error)
		})
		if !ok {
			t.Fatal("the engine has no Dump for this test")
		}
		text, err := dump.Dump(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{"Ayşe", "532 123", "45 67", "34 ABC 123", "POL-123456", "Bağdat", "usr_customer"} {
			if strings.Contains(text, secret) {
				t.Errorf("the warehouse holds %q", secret)
			}
		}
		if !strings.Contains(text, "İstanbul") || !strings.Contains(text, "waited too long") {
			t.Fatal("the dump does not hold what it should; the test proves nothing")
		}
	})
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func newService(t *testing.T, open Open) *warehouse.Service {
	t.Helper()
	svc, err := warehouse.New(open(t), warehouse.Options{SLA: SLA})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// loadShuffled loads the fixture's events in random batches of 1-60, in a
// shuffled order, with some events repeated inside a batch.
func loadShuffled(t *testing.T, svc *warehouse.Service, f Fixture, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 99))
	evs := append([][]byte(nil), f.Events...)
	rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	for len(evs) > 0 {
		n := min(1+rng.IntN(60), len(evs))
		batch := append([][]byte(nil), evs[:n]...)
		if rng.IntN(3) == 0 {
			batch = append(batch, batch[0])
		}
		res, err := svc.LoadBatch(context.Background(), batch)
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		for i, e := range res {
			if e != nil {
				t.Fatalf("event %d of the batch refused: %v", i, e)
			}
		}
		evs = evs[n:]
	}
}

func query(t *testing.T, groupBy string) warehouse.Query {
	t.Helper()
	q, err := warehouse.ParseQuery(Start.Add(-time.Hour).Format(time.RFC3339), Start.Add(40*24*time.Hour).Format(time.RFC3339), groupBy, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	q.SLA = SLA
	return q
}

func reportRows(t *testing.T, run func(context.Context, warehouse.Query) (warehouse.Report, error), q warehouse.Query) []warehouse.Row {
	t.Helper()
	rep, err := run(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return rep.Rows
}

// checkReports compares every report, over several groupings and a range
// that cuts the fixture, with the oracle's.
func checkReports(t *testing.T, svc *warehouse.Service, f Fixture) {
	t.Helper()
	for _, g := range []string{"", "province", "hour,insurer", "day,province,service_type,status", "hour_of_day", "district,vehicle_type", "month"} {
		q := query(t, g)
		if d := cmp.Diff(ExpectRequests(f, q), reportRows(t, svc.Requests, q)); d != "" {
			t.Errorf("requests report by %q (-want +got):\n%s", g, d)
		}
		if d := cmp.Diff(ExpectSLA(f, q), reportRows(t, svc.SLAReport, q)); d != "" {
			t.Errorf("SLA report by %q (-want +got):\n%s", g, d)
		}
	}
	// Whole UTC days: an engine with a daily rollup answers from it.
	for _, g := range []string{"", "province,status", "day,insurer", "month,service_type,status"} {
		q := query(t, g)
		q.From, q.To = time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		if d := cmp.Diff(ExpectRequests(f, q), reportRows(t, svc.Requests, q)); d != "" {
			t.Errorf("requests report by %q over whole days (-want +got):\n%s", g, d)
		}
	}
	// A range that cuts the fixture: from its second hour, for a day.
	cut := query(t, "province")
	cut.From, cut.To = Start.Add(time.Hour), Start.Add(25*time.Hour)
	if d := cmp.Diff(ExpectRequests(f, cut), reportRows(t, svc.Requests, cut)); d != "" {
		t.Errorf("requests report over a cut range (-want +got):\n%s", d)
	}
	// Not whole hours: an engine with an hourly rollup must read the facts.
	odd := query(t, "insurer,status")
	odd.From, odd.To = Start.Add(90*time.Minute), Start.Add(30*time.Hour+17*time.Minute)
	if d := cmp.Diff(ExpectRequests(f, odd), reportRows(t, svc.Requests, odd)); d != "" {
		t.Errorf("requests report over a range of broken hours (-want +got):\n%s", d)
	}
	all := query(t, "")
	breaches := ExpectBreaches(f, all)
	if len(breaches) == 0 {
		t.Fatal("the fixture has no SLA breach; the breach test proves nothing")
	}
	if d := cmp.Diff(breaches, reportRows(t, svc.Breaches, all)); d != "" {
		t.Errorf("breaches (-want +got):\n%s", d)
	}
	// A long range and a short list: the first few, whatever the range.
	first := all
	first.From, first.Limit = Start.AddDate(0, -3, 0), 5
	rep, err := svc.Breaches(context.Background(), first)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(breaches[:5], rep.Rows); d != "" || !rep.Truncated {
		t.Errorf("first 5 breaches over months, truncated %v (-want +got):\n%s", rep.Truncated, d)
	}
	if d := cmp.Diff(ExpectInsurers(f, all), reportRows(t, svc.Insurers, all)); d != "" {
		t.Errorf("insurers report (-want +got):\n%s", d)
	}
	if d := cmp.Diff(ExpectInsurers(f, cut), reportRows(t, svc.Insurers, cut)); d != "" {
		t.Errorf("insurers report over a cut range (-want +got):\n%s", d)
	}
}

func requestOf(t *testing.T, payload []byte) string {
	var env struct {
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(payload, &env); err != nil {
		t.Fatal(err)
	}
	return env.RequestID
}

// LoadShuffled loads f's events into svc in random batches of 1-60, in a
// shuffled order, with some events repeated: for engine-specific tests.
func LoadShuffled(t *testing.T, svc *warehouse.Service, f Fixture, seed uint64) {
	t.Helper()
	loadShuffled(t, svc, f, seed)
}

// CheckReports compares svc's reports with the oracle's for f.
func CheckReports(t *testing.T, svc *warehouse.Service, f Fixture) {
	t.Helper()
	checkReports(t, svc, f)
}
