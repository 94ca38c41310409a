package duckdb_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/warehouse"
	"github.com/yolda/yolda/internal/warehouse/benchmark"
	"github.com/yolda/yolda/internal/warehouse/duckdb"
)

// BenchmarkLoadLive is the loader's rate on the live path: batches of
// events as the platform emits them, each request's facts re-derived as
// its events arrive (events/s is b.N/elapsed).
func BenchmarkLoadLive(b *testing.B) {
	for _, batch := range []int{16, 256, 1024, 4096} {
		b.Run(fmt.Sprintf("batch%d", batch), func(b *testing.B) {
			s, err := duckdb.Open(context.Background(), filepath.Join(b.TempDir(), "w.duckdb"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			svc, err := warehouse.New(s, warehouse.Options{Registerer: prometheus.NewRegistry()})
			if err != nil {
				b.Fatal(err)
			}
			live := benchmark.NewLive(1)
			payloads := make([][]byte, batch)
			b.ResetTimer()
			for done := 0; done < b.N; done += batch {
				for i := range payloads {
					payloads[i] = live.Next().Payload
				}
				if _, err := svc.LoadBatch(context.Background(), payloads); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
