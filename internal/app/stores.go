package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/audit"
	"github.com/yolda/yolda/internal/config"
	"github.com/yolda/yolda/internal/deadletter"
	"github.com/yolda/yolda/internal/dispatch"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/insurance/checks"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/notify"
	"github.com/yolda/yolda/internal/relay"
	"github.com/yolda/yolda/internal/store/postgres"
	"github.com/yolda/yolda/internal/store/sqlite"
	"github.com/yolda/yolda/internal/sweeper"
)

// operationalStore is every port the SQL stores implement.
type operationalStore interface {
	intake.Store
	account.Store
	audit.Store
	fleet.Store
	dispatch.Store
	relay.Store
	sweeper.Store
	deadletter.Store
	notify.Store
	checks.PendingSource
	checks.Outbox
	Ping(ctx context.Context) error
	Migrate(ctx context.Context) error
}

// openedStore is a store with what the composition root needs to know
// about its engine.
type openedStore struct {
	operationalStore
	engine string
	// where is the SQLite file's absolute path, or the PostgreSQL URL
	// without its password: what to tell someone looking for their data.
	where string
	// created is true when the SQLite file did not exist before opening.
	created bool
	close   func()
	// writers is how many intake transactions pay off at once.
	writers int
}

// openStore picks the engine by URL: PostgreSQL (with pgOpts) for
// postgres://, SQLite in the data dir otherwise. Opening migrates the
// schema.
func openStore(ctx context.Context, cfg config.Config, pgOpts ...postgres.Option) (*openedStore, error) {
	if strings.HasPrefix(cfg.DatabaseURL, "postgres://") || strings.HasPrefix(cfg.DatabaseURL, "postgresql://") {
		s, err := postgres.Open(ctx, cfg.DatabaseURL, pgOpts...)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		return &openedStore{operationalStore: s, engine: "postgres", where: config.Redact(cfg.DatabaseURL),
			close: func() { _ = s.Close() }, writers: 2}, nil
	}
	path, err := filepath.Abs(cfg.DatabasePath())
	if err != nil {
		return nil, fmt.Errorf("sqlite path: %w", err)
	}
	_, statErr := os.Stat(path)
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	return &openedStore{operationalStore: s, engine: "sqlite", where: path, created: errors.Is(statErr, fs.ErrNotExist),
		close: func() { _ = s.Close() }, writers: 1}, nil
}
