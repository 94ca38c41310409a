package duckdb_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/yolda/yolda/internal/warehouse"
	"github.com/yolda/yolda/internal/warehouse/benchmark"
	"github.com/yolda/yolda/internal/warehouse/duckdb"
)

// BenchmarkAppendFacts is the bulk load rate (rows per second is
// b.N/elapsed); `yolda bench warehouse` measures it at scale.
func BenchmarkAppendFacts(b *testing.B) {
	s, err := duckdb.Open(context.Background(), filepath.Join(b.TempDir(), "w.duckdb"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	synth := benchmark.NewSynth(1)
	facts := make([]warehouse.RequestFact, 50_000)
	for i := range facts {
		facts[i] = synth.Next()
	}
	b.ResetTimer()
	for done := 0; done < b.N; done += len(facts) {
		if err := s.AppendFacts(context.Background(), facts[:min(len(facts), b.N-done)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
