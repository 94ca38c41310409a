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
