package duckdb_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/yolda/yolda/internal/warehouse"
	"github.com/yolda/yolda/internal/warehouse/duckdb"
	"github.com/yolda/yolda/internal/warehouse/warehousetest"
)

// The writer's memory of recent requests (recent.go) and the rollup deltas
// are shortcuts: with room for a handful of events, so that requests are
// forgotten and read back from DuckDB all the time, and the deltas folded
// at every load, every report still matches the oracle.
func TestConformanceWithLittleMemory(t *testing.T) {
	warehousetest.Run(t, func(t *testing.T) warehouse.Store {
		s, err := duckdb.OpenWith(context.Background(), filepath.Join(t.TempDir(), "warehouse.duckdb"), duckdb.Options{RecentEvents: 5})
		if err != nil {
			t.Fatal(err)
		}
		s.SetCompactRows(1)
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// Facts loaded from the writer's memory are those a fresh derivation from
// the stored events gives.
func TestRememberedFactsMatchRederived(t *testing.T) {
	for _, recent := range []int{duckdb.DefaultRecentEvents, 40} {
		s, svc := open(t, duckdb.Options{RecentEvents: recent})
		f := warehousetest.NewFixture(11, 200, warehousetest.Start)
		warehousetest.LoadShuffled(t, svc, f, 5)
		loaded := facts(t, s)
		if _, err := svc.RebuildFromWarehouse(context.Background()); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(facts(t, s), loaded); d != "" {
			t.Errorf("RecentEvents %d: loaded facts differ from rederived ones (-rederived +loaded):\n%s", recent, d)
		}
		if len(loaded) != len(f.Requests) {
			t.Fatalf("%d facts for %d requests", len(loaded), len(f.Requests))
		}
	}
}

// A load that fails leaves nothing behind, in DuckDB or in the writer's
// memory: the requests it touched load correctly afterwards.
func TestFailedLoadLeavesNoTrace(t *testing.T) {
	ctx := context.Background()
	s, svc := open(t, duckdb.Options{})
	f := warehousetest.NewFixture(13, 120, warehousetest.Start)
	half := len(f.Events) / 2
	if _, err := svc.LoadBatch(ctx, f.Events[:half]); err != nil {
		t.Fatal(err)
	}
	var evs []warehouse.Event
	for _, p := range f.Events[half : half+40] {
		e, err := warehouse.Decode(p)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e)
	}
	// DuckDB refuses text that is not UTF-8: the load fails after it
	// wrote the events and deleted the facts it was replacing.
	broken := func(id string, evs []warehouse.Event) warehouse.RequestFact {
		fact := warehouse.Derive(id, evs)
		fact.Province = "\xff"
		return fact
	}
	if _, err := s.Load(ctx, evs, broken); err == nil {
		t.Fatal("a load with a fact DuckDB must refuse succeeded; the test proves nothing")
	}
	if _, err := svc.LoadBatch(ctx, f.Events[half:]); err != nil {
		t.Fatal(err)
	}
	warehousetest.CheckReports(t, svc, f)
	loaded := facts(t, s)
	if _, err := svc.RebuildFromWarehouse(ctx); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(facts(t, s), loaded); d != "" {
		t.Errorf("facts after a failed load differ from rederived ones (-rederived +loaded):\n%s", d)
	}
}

// A reopened warehouse knows nothing in memory: the events of requests it
// loaded before land on their facts, and the rollup deltas it kept count.
func TestReopenedWarehouseGoesOn(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "warehouse.duckdb")
	f := warehousetest.NewFixture(17, 150, warehousetest.Start)
	half := len(f.Events) / 2
	for _, part := range [][][]byte{f.Events[:half], f.Events[half:]} {
		s, err := duckdb.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		svc, err := warehouse.New(s, warehouse.Options{SLA: warehousetest.SLA})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(part); i += 25 {
			if _, err := svc.LoadBatch(ctx, part[i:min(i+25, len(part))]); err != nil {
				t.Fatal(err)
			}
		}
		if len(part) == len(f.Events)-half {
			warehousetest.CheckReports(t, svc, f)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func open(t *testing.T, o duckdb.Options) (*duckdb.Store, *warehouse.Service) {
	t.Helper()
	s, err := duckdb.OpenWith(context.Background(), filepath.Join(t.TempDir(), "warehouse.duckdb"), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	svc, err := warehouse.New(s, warehouse.Options{SLA: warehousetest.SLA})
	if err != nil {
		t.Fatal(err)
	}
	return s, svc
}

// facts is every request fact row, as text, sorted.
func facts(t *testing.T, s *duckdb.Store) []string {
	t.Helper()
	dump, err := s.Dump(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for line := range strings.Lines(dump) {
		if strings.HasPrefix(line, "request_facts ") {
			out = append(out, line)
		}
	}
	slices.Sort(out)
	return out
}
