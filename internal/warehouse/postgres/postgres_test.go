package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/yolda/yolda/internal/store/postgres/pgtest"
	"github.com/yolda/yolda/internal/warehouse"
	"github.com/yolda/yolda/internal/warehouse/postgres"
	"github.com/yolda/yolda/internal/warehouse/warehousetest"
)

func TestConformance(t *testing.T) {
	warehousetest.Run(t, func(t *testing.T) warehouse.Store {
		s, err := postgres.Open(context.Background(), pgtest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// TestConcurrentLoaders: two loaders (as in two warehouse processes) load
// interleaved batches holding events of the same requests at the same
// time; facts and the rollup must end as if one had loaded everything.
func TestConcurrentLoaders(t *testing.T) {
	url := pgtest.URL(t)
	ctx := context.Background()
	var svcs [2]*warehouse.Service
	for i := range svcs {
		s, err := postgres.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		svcs[i], err = warehouse.New(s, warehouse.Options{SLA: warehousetest.SLA})
		if err != nil {
			t.Fatal(err)
		}
	}
	f := warehousetest.NewFixture(11, 150, warehousetest.Start)
	// Event i goes to loader i%2: every request's events are split
	// between the two.
	errs := make(chan error, 2)
	for w := range 2 {
		go func() {
			var batch [][]byte
			for i := w; i < len(f.Events); i += 2 {
				batch = append(batch, f.Events[i])
				if len(batch) == 20 {
					if _, err := svcs[w].LoadBatch(ctx, batch); err != nil {
						errs <- err
						return
					}
					batch = nil
				}
			}
			_, err := svcs[w].LoadBatch(ctx, batch)
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	q, err := warehouse.ParseQuery("2026-11-28", "2026-12-30", "province,insurer,status", time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, from := range []time.Time{q.From, q.From.Add(90 * time.Minute)} { // rollup, then facts
		q.From = from
		rep, err := svcs[0].Requests(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(warehousetest.ExpectRequests(f, q), rep.Rows); d != "" {
			t.Errorf("after concurrent loads, from %s (-want +got):\n%s", from, d)
		}
	}
}
