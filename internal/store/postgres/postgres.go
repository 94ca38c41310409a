// Package postgres is the scale-out operational store: PostgreSQL through a
// pgx connection pool. It passes the same conformance suite as the embedded
// SQLite store (internal/store/storetest).
//
// Round trips are what a busy intake pays for besides the WAL flush, so the
// hot paths pipeline their statements: CreateRequests is one round trip for
// a whole group-commit batch (one statement inserting the idempotency
// claims, requests, timelines and outbox rows from arrays, plus one read of
// the batch's keys, run as one implicit transaction), UpdateRequest three
// (lock and read, write, commit), reads one.
//
// Every commit of outbox rows is followed by a notification on
// OutboxChannel (coalesced, outside the committing transaction: see
// notifyOutboxSQL), so relays (ListenOutbox) wake instead of polling.
// Relays claim outbox rows with a lease (outbox.go) and sweepers record a
// decision only on a request still as they read it, so both run in any
// number of processes.
//
// Durability is the server's: a committed transaction is flushed unless the
// operator turns synchronous_commit off, which this package never does for
// a transaction that writes data (only for its notifications).
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/deadletter"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/notify"
	"github.com/yolda/yolda/internal/store/migrate"
	"github.com/yolda/yolda/internal/telemetry"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the PostgreSQL implementation of every store port.
type Store struct {
	pool *pgxpool.Pool
	log  *slog.Logger

	metrics     storeMetrics
	listen      listenTiming
	listenPings atomic.Int64 // pings of a quiet listener connection, for tests
	probeSQL    string       // how the listener notifies itself

	kick     chan struct{} // outboxCommitted -> notifier
	stop     chan struct{} // closed by Close
	stopOnce sync.Once
	stopped  chan struct{} // closed by the notifier on its way out
}

var (
	_ intake.Store     = (*Store)(nil)
	_ account.Store    = (*Store)(nil)
	_ deadletter.Store = (*Store)(nil)
	_ notify.Store     = (*Store)(nil)
)

// Option tunes Open.
type Option func(*options)

type options struct {
	schema   string
	maxConns int32
	migrate  bool
	log      *slog.Logger
	reg      prometheus.Registerer
}

// WithLogger gives the store a logger for what it does on its own (the
// outbox listener's failures). Default: none.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRegisterer registers the store's metrics (the outbox listener's) on
// reg. Default: unregistered.
func WithRegisterer(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

// storeMetrics are the store's own series.
type storeMetrics struct {
	listening      prometheus.Gauge
	listenFailures *prometheus.CounterVec
}

func newStoreMetrics(reg prometheus.Registerer) (storeMetrics, error) {
	r := telemetry.NewRegistrar(reg)
	m := storeMetrics{
		listening: telemetry.Reuse(r, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "yolda_outbox_listening",
			Help: "1 while the outbox listener receives notifications (relays wake at once), 0 while they poll.",
		})),
		listenFailures: telemetry.Reuse(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "yolda_outbox_listen_failures_total",
			Help: "Times the outbox listener stopped or could not start, by reason (connection; no_delivery: LISTEN accepted but nothing delivered, as behind a pooler in transaction mode).",
		}, []string{"reason"})),
	}
	return m, r.Err()
}

// WithSchema makes the store live in the given schema (it must exist): it
// becomes the search_path of every connection. Tests use it to give each
// store a fresh, empty schema. A search_path in the URL does the same.
func WithSchema(name string) Option { return func(o *options) { o.schema = name } }

// WithMaxConns caps the pool (default: pgxpool's, max(4, CPUs), unless the
// URL sets pool_max_conns).
func WithMaxConns(n int) Option { return func(o *options) { o.maxConns = int32(n) } }

// WithoutMigrate opens the store without applying migrations (for a
// process that must not change the schema; `yolda migrate` does it).
func WithoutMigrate() Option { return func(o *options) { o.migrate = false } }

// Open connects to the database at url (postgres://... or a key=value
// DSN; pgx's pool_* parameters apply) and, unless WithoutMigrate, brings
// its schema up to date.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	o := options{migrate: true}
	for _, opt := range opts {
		opt(&o)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if o.schema != "" {
		cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{o.schema}.Sanitize()
	}
	if o.maxConns > 0 {
		cfg.MaxConns = o.maxConns
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "yolda"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	m, err := newStoreMetrics(o.reg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("store metrics: %w", err)
	}
	s := &Store{pool: pool, log: o.log.With("component", "postgres"), metrics: m, listen: defaultListenTiming(),
		probeSQL: `SELECT pg_notify('` + OutboxChannel + `', $1)`,
		kick:     make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	if o.migrate {
		if err := s.Migrate(ctx); err != nil {
			pool.Close()
			return nil, err
		}
	}
	go s.notifier(s.stop, s.stopped)
	return s, nil
}

// closeTimeout bounds Close. pgx gives a broken connection 15 s to send its
// cancel request and say goodbye, and waits for that when the pool closes;
// against a server that stopped answering that is 15 s of a shutdown for
// nothing. Past closeTimeout the remaining connections are abandoned to the
// operating system, which closes them when the process exits.
const closeTimeout = 2 * time.Second

// Close stops the relays' notifier and closes the pool, waiting at most
// closeTimeout for the connections in use to be returned and closed. It
// reports the connections it had to abandon.
func (s *Store) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	done := make(chan struct{})
	go func() {
		<-s.stopped
		s.pool.Close()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-time.After(closeTimeout):
		return fmt.Errorf("postgres: connections still closing after %s: abandoned", closeTimeout)
	}
}

// Ping checks that the database answers (readiness).
func (s *Store) Ping(ctx context.Context) error {
	return s.pool.Ping(ctx)
}

// Pool exposes the connection pool, for the relay and for tests.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// migrateLockClass is the first key of the advisory lock that serialises
// migrations; the second is a hash of the schema, so stores in different
// schemas of one database migrate independently.
const migrateLockClass = 0x59_4c_44_41 // "YLDA"

// Migrate applies the migrations not yet applied, all in one transaction
// that first takes a transaction-scoped advisory lock: processes starting
// at once wait for each other, and each migration is applied once.
func (s *Store) Migrate(ctx context.Context) error {
	all, err := migrate.Load(migrations, "migrations")
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(coalesce(current_schema(), '')))`,
			int32(migrateLockClass)); err != nil {
			return fmt.Errorf("lock for migrations: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var current int
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		pending, err := migrate.Pending(all, current)
		if err != nil {
			return err
		}
		for _, m := range pending {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("apply migration %s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.Version, m.Name, time.Now()); err != nil {
				return fmt.Errorf("record migration %s: %w", m.Name, err)
			}
		}
		return nil
	})
}

// rowError wraps err with intake.ErrRowRejected when a row caused it: an
// integrity constraint it violates (class 23) or a value the column
// refuses (class 22). Everything else (a timeout, a lost connection, a
// server shutting down) is the database's.
func rowError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "23") || strings.HasPrefix(pgErr.Code, "22")) {
		return fmt.Errorf("%w: %w", intake.ErrRowRejected, err)
	}
	return err
}

// isUniqueViolation reports whether err is a unique violation of the named
// constraint (any constraint if name is empty).
func isUniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" &&
		(constraint == "" || pgErr.ConstraintName == constraint)
}

// utc returns t in UTC: pgx hands timestamptz back in the local zone.
func utc(t time.Time) time.Time { return t.UTC() }

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
