package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/yolda/yolda/internal/store/sqlite"
	"github.com/yolda/yolda/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "yolda.db"))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestMigrateIsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "yolda.db")
	for range 2 {
		s, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatalf("Migrate again: %v", err)
		}
		s.Close()
	}
}

func TestMessagingConformance(t *testing.T) {
	storetest.RunMessaging(t, func(t *testing.T) storetest.MessagingStore {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "yolda.db"))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestFleetConformance(t *testing.T) {
	storetest.RunFleet(t, func(t *testing.T) storetest.FleetStore {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "yolda.db"))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
