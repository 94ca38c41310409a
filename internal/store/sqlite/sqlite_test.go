package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/yolda/yolda/internal/store/migrate"
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

// schema describes everything the migrations made: every table, index and
// their SQL, and the migrations recorded.
func schema(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b strings.Builder
	rows, err := db.Query(`SELECT type, name, coalesce(sql, '') FROM sqlite_master ORDER BY type, name`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var typ, name, def string
		if err := rows.Scan(&typ, &name, &def); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %s: %s\n", typ, name, def)
	}
	rows.Close()
	var n, top int
	if err := db.QueryRow(`SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &top); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "migrations: %d up to %d\n", n, top)
	return b.String()
}

// Migrating an up-to-date schema changes nothing: not a table, not an
// index, not the record of what was applied.
func TestMigrateIsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "yolda.db")
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	s.Close()
	before := schema(t, path)
	if !strings.Contains(before, "table outbox_claims") || !strings.Contains(before, migrationsLine(t)) {
		t.Fatalf("schema after the first migration:\n%s", before)
	}
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
	if after := schema(t, path); after != before {
		t.Errorf("migrating again changed the schema:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// A database migrated by a newer build is refused, with a reason.
func TestMigrateRefusesANewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "yolda.db")
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, '0099_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := sqlite.Open(context.Background(), path); !errors.Is(err, migrate.ErrSchemaNewer) || !strings.Contains(err.Error(), "99") {
		t.Errorf("Open on a newer schema: %v, want migrate.ErrSchemaNewer naming version 99", err)
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

func TestAccountConformance(t *testing.T) {
	storetest.RunAccounts(t, func(t *testing.T) storetest.AccountStore {
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

func TestDispatchConformance(t *testing.T) {
	storetest.RunDispatch(t, func(t *testing.T) storetest.DispatchStore {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "yolda.db"))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// migrationsLine is what schema says when every migration of this build
// has been applied once: as many as the migrations directory holds.
func migrationsLine(t *testing.T) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("migrations", "*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("migrations: %v (%d files)", err, len(files))
	}
	return fmt.Sprintf("migrations: %d up to %d", len(files), len(files))
}

// BenchmarkDecisions: the store's side of a dispatch pass (see
// storetest.BenchDecisions).
//
//	go test -run '^$' -bench Decisions -benchmem ./internal/store/sqlite/
func BenchmarkDecisions(b *testing.B) {
	s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "yolda.db"))
	if err != nil {
		b.Fatalf("Open: %v", err)
	}
	b.Cleanup(func() { s.Close() })
	storetest.BenchDecisions(b, s)
}
