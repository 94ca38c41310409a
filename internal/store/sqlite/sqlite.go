// Package sqlite is the embedded operational store: one SQLite file in WAL
// mode, written through a single connection (SQLite has one writer; queueing
// in Go is cheaper than SQLITE_BUSY retries) and read through a pool.
//
// Durability: synchronous=FULL, so a committed transaction survives a power
// loss, not only a process crash. Intake's group commit makes the fsync per
// transaction affordable.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/store/migrate"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the SQLite implementation of every store port.
type Store struct {
	write *pool
	read  *pool
	group writeGroup
}

var (
	_ intake.Store  = (*Store)(nil)
	_ account.Store = (*Store)(nil)
)

// Open opens (creating if needed) the database file at path and brings its
// schema up to date.
func Open(ctx context.Context, path string) (*Store, error) {
	if err := createPrivate(path); err != nil {
		return nil, err
	}
	dsn := func(txlock string) string {
		q := url.Values{}
		for _, p := range []string{
			"journal_mode(WAL)",
			"synchronous(FULL)",
			"busy_timeout(10000)",
			"foreign_keys(ON)",
			"cache_size(-32000)",
		} {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", txlock)
		return "file:" + path + "?" + q.Encode()
	}
	write, err := sql.Open("sqlite", dsn("immediate"))
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	write.SetMaxOpenConns(1)
	write.SetConnMaxIdleTime(0)
	read, err := sql.Open("sqlite", dsn("deferred"))
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	// Idle readers stay open: a new connection reads the schema again and
	// prepares every statement again.
	read.SetMaxOpenConns(max(4, runtime.GOMAXPROCS(0)))
	read.SetMaxIdleConns(max(4, runtime.GOMAXPROCS(0)))
	s := &Store{write: newPool(write), read: newPool(read)}
	if err := s.Migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// createPrivate makes sure the database file exists and, when it creates
// it, that only its owner can read it: it holds password hashes, phones
// and addresses. SQLite gives the -wal and -shm files the mode of the
// database file, so this covers all three. A file that already exists is
// left as it is (the server warns at start when the data directory is
// open to others).
func createPrivate(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create database file: %w", err)
	}
	return f.Close()
}

// Close closes both connection pools.
func (s *Store) Close() error {
	return errors.Join(s.write.Close(), s.read.Close())
}

// Ping checks that the database answers (readiness).
func (s *Store) Ping(ctx context.Context) error {
	return s.read.PingContext(ctx)
}

// Migrate applies the migrations not yet applied. BEGIN IMMEDIATE takes
// the write lock, so two processes starting at once apply each migration
// once.
func (s *Store) Migrate(ctx context.Context) error {
	all, err := migrate.Load(migrations, "migrations")
	if err != nil {
		return err
	}
	return s.tx(ctx, func(t *txn) error {
		tx := t.Tx // statements run once: not worth keeping prepared
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var current int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		pending, err := migrate.Pending(all, current)
		if err != nil {
			return err
		}
		for _, m := range pending {
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return fmt.Errorf("apply migration %s: %w", m.Name, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.Version, m.Name, toMicros(time.Now())); err != nil {
				return fmt.Errorf("record migration %s: %w", m.Name, err)
			}
		}
		return nil
	})
}

// cleanupTimeout bounds the work done after the caller's context may have
// ended (recording what the broker confirmed): it must never wait for ever.
const cleanupTimeout = 5 * time.Second

func toMicros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func nullMicros(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: toMicros(*t), Valid: true}
}
