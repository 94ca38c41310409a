package duckdb_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/yolda/yolda/internal/warehouse"
	"github.com/yolda/yolda/internal/warehouse/duckdb"
	"github.com/yolda/yolda/internal/warehouse/warehousetest"
)

func TestConformance(t *testing.T) {
	warehousetest.Run(t, func(t *testing.T) warehouse.Store {
		s, err := duckdb.Open(context.Background(), filepath.Join(t.TempDir(), "warehouse.duckdb"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// The warehouse role may be the first to use its data directory (on
// PostgreSQL nothing else lives there): Open makes it.
func TestOpenMakesTheDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fresh", "data", "warehouse.duckdb")
	s, err := duckdb.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open in a directory that does not exist yet: %v", err)
	}
	_ = s.Close()
}
