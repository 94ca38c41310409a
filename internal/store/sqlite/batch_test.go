package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/yolda/yolda/internal/store/sqlite"
	"github.com/yolda/yolda/internal/store/storetest"
)

func TestBatchConformance(t *testing.T) {
	storetest.RunBatch(t, func(t *testing.T) storetest.MessagingStore {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "yolda.db"))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
