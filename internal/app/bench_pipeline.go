package app

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/config"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/loadgen"
)

// benchPipeline is `yolda bench pipeline`: the highest intake rate at
// which every consumer of a running server keeps up (internal/loadgen),
// optionally with drivers online and each request's first offer measured.
func benchPipeline(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("bench pipeline", "Steps open-loop intake load up on a running server until a consumer falls behind, and prints the highest rate that held.\n"+
		"With --drivers, brings that many drivers online over İstanbul first (accounts created in the store that --data-dir or --database-url names)\n"+
		"and counts a request's first offer within --max-first-offer-p99 as part of keeping up.\n", env)
	opts := loadgen.PipelineFlags(fs)
	drivers := fs.Int("drivers", 0, "drivers to bring online over İstanbul before the first step (0: none, first offers not measured)")
	cfg, err := loadConfig(fs, args, env, storeFlags)
	if err != nil {
		return err
	}
	if *drivers > 0 {
		if opts.Area == nil {
			a := loadgen.Istanbul
			opts.Area = &a // requests where the drivers are
		}
		start := time.Now()
		accounts, err := benchDrivers(ctx, cfg, *drivers)
		if err != nil {
			return fmt.Errorf("driver accounts: %w", err)
		}
		if err := loadgen.SeedDrivers(ctx, opts.BaseURL, accounts, loadgen.Istanbul, opts.Seed, 32); err != nil {
			return fmt.Errorf("bring drivers online: %w", err)
		}
		fmt.Fprintf(env.Stdout, "%d drivers online over İstanbul in %s\n", len(accounts), time.Since(start).Round(time.Second))
	}
	// The database, when this machine reaches it, counts the outbox and,
	// with drivers, tells first offers.
	db, err := openBenchDB(ctx, cfg)
	if err == nil {
		defer db.close()
		_, err = db.outboxRows(ctx)
	}
	switch {
	case err == nil:
		opts.AfterWarmup, opts.OutboxRows = db.analyze, db.outboxRows
		if *drivers > 0 {
			opts.FirstOffers = db
		}
	case *drivers > 0:
		return fmt.Errorf("the database (for first offers): %w", err)
	default:
		where := cfg.DatabasePath()
		if isPostgres(cfg.DatabaseURL) {
			where = config.Redact(cfg.DatabaseURL)
		}
		fmt.Fprintf(env.Stderr, "yolda: note: no database at %s (%v): the outbox backlog comes from the relay's gauge\n", where, err)
	}
	res, err := loadgen.RunPipeline(ctx, *opts, env.Stdout)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	label := opts.Label
	if label == "" {
		label = "yolda"
	}
	fmt.Fprintf(env.Stdout, "\nSteps:\n\n%s\n", loadgen.StepsHeader)
	for _, st := range res.Steps {
		fmt.Fprintln(env.Stdout, st.StepRow(label))
	}
	fmt.Fprintf(env.Stdout, "\nSustained:\n\n%s\n%s\n", loadgen.SummaryHeader, res.Summary(label))
	return err
}

// benchHasher hashes the benchmark drivers' passwords at argon2id's
// lowest cost: at the default cost, 10,000 accounts take minutes to create
// and as long again to sign in, and these accounts guard nothing.
var benchHasher = account.Hasher{Memory: 64, Time: 1, Threads: 1}

// benchDriverPassword is every benchmark driver's password.
const benchDriverPassword = "bench-driver-password"

// benchDrivers creates (or finds) n driver accounts bench-driver-NNNNN,
// half of them with tow trucks, through the account service as `users
// add` does.
func benchDrivers(ctx context.Context, cfg config.Config, n int) ([]loadgen.DriverAccount, error) {
	store, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer store.close()
	h := benchHasher
	svc, err := account.NewService(store, &h)
	if err != nil {
		return nil, err
	}
	all := make([]string, len(intake.ServiceTypes))
	roadside := make([]string, 0, len(intake.ServiceTypes))
	for i, st := range intake.ServiceTypes {
		all[i] = string(st)
		if st != intake.Tow {
			roadside = append(roadside, string(st))
		}
	}
	out := make([]loadgen.DriverAccount, n)
	next := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range next {
				u := account.NewUser{
					Username: fmt.Sprintf("bench-driver-%05d", i+1), Password: benchDriverPassword, Role: identity.Driver,
					Name: fmt.Sprintf("Bench Driver %d", i+1), VehiclePlate: fmt.Sprintf("34BD%05d", i+1),
					Capabilities: roadside, VehicleKind: "service_van",
				}
				if i%2 == 0 {
					u.Capabilities, u.VehicleKind = all, "tow_truck"
				}
				if _, err := svc.Add(ctx, u); err != nil && !errors.Is(err, account.ErrUsernameTaken) {
					select {
					case errs <- err:
					default:
					}
					continue
				}
				out[i] = loadgen.DriverAccount{Username: u.Username, Password: u.Password}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	return out, nil
}

// benchDB reads the operational database for the benchmark, read-only:
// first offers (no API tells a customer about offers, and the
// offer.created event is on a broker the benchmark may not reach: the
// embedded one listens on no port) and the outbox's rows.
type benchDB struct {
	query      func(ctx context.Context, ids []string) (map[string]time.Duration, error)
	outboxRows func(ctx context.Context) (int64, error)
	// analyze refreshes the planner's statistics (PostgreSQL; nothing on
	// SQLite, whose plans do not depend on them here).
	analyze func(ctx context.Context) error
	close   func()
}

func isPostgres(url string) bool {
	return strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://")
}

func (p *benchDB) FirstOffers(ctx context.Context, ids []string) (map[string]time.Duration, error) {
	out := make(map[string]time.Duration, len(ids))
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), 500)]
		ids = ids[len(chunk):]
		got, err := p.query(ctx, chunk)
		if err != nil {
			return nil, err
		}
		for id, d := range got {
			out[id] = d
		}
	}
	return out, nil
}

// firstOfferSQL finds each request's creation and its earliest offer.
const firstOfferSQL = `SELECT r.id, r.created_at, o.first
FROM requests r JOIN (SELECT request_id, MIN(created_at) AS first FROM offers WHERE request_id IN (%s) GROUP BY request_id) o
ON o.request_id = r.id`

// outboxRowsSQL counts what is committed and not yet confirmed by the
// broker: a row leaves the outbox with the broker's confirmation.
const outboxRowsSQL = `SELECT count(*) FROM outbox`

func placeholders(n int, pg bool) string {
	ps := make([]string, n)
	for i := range ps {
		ps[i] = "?"
		if pg {
			ps[i] = fmt.Sprintf("$%d", i+1)
		}
	}
	return strings.Join(ps, ",")
}

func anys(ids []string) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}

func openBenchDB(ctx context.Context, cfg config.Config) (*benchDB, error) {
	if isPostgres(cfg.DatabaseURL) {
		pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
		if err != nil {
			return nil, fmt.Errorf("offer probe: %w", err)
		}
		analyze := func(ctx context.Context) error {
			if _, err := pool.Exec(ctx, "ANALYZE"); err != nil {
				return fmt.Errorf("analyze: %w", err)
			}
			return nil
		}
		rows := func(ctx context.Context) (n int64, err error) {
			err = pool.QueryRow(ctx, outboxRowsSQL).Scan(&n)
			return n, err
		}
		return &benchDB{close: pool.Close, analyze: analyze, outboxRows: rows, query: func(ctx context.Context, ids []string) (map[string]time.Duration, error) {
			rows, err := pool.Query(ctx, fmt.Sprintf(firstOfferSQL, placeholders(len(ids), true)), anys(ids)...)
			if err != nil {
				return nil, fmt.Errorf("first offers: %w", err)
			}
			defer rows.Close()
			out := map[string]time.Duration{}
			for rows.Next() {
				var id string
				var created, first time.Time
				if err := rows.Scan(&id, &created, &first); err != nil {
					return nil, fmt.Errorf("first offers: %w", err)
				}
				out[id] = first.Sub(created)
			}
			return out, rows.Err()
		}}, nil
	}
	db, err := sql.Open("sqlite", "file:"+cfg.DatabasePath()+"?mode=ro&_pragma=busy_timeout(10000)&_pragma=query_only(1)")
	if err != nil {
		return nil, fmt.Errorf("offer probe: %w", err)
	}
	rows := func(ctx context.Context) (n int64, err error) {
		err = db.QueryRowContext(ctx, outboxRowsSQL).Scan(&n)
		return n, err
	}
	return &benchDB{close: func() { _ = db.Close() }, analyze: func(context.Context) error { return nil }, outboxRows: rows, query: func(ctx context.Context, ids []string) (map[string]time.Duration, error) {
		rows, err := db.QueryContext(ctx, fmt.Sprintf(firstOfferSQL, placeholders(len(ids), false)), anys(ids)...)
		if err != nil {
			return nil, fmt.Errorf("first offers: %w", err)
		}
		defer rows.Close()
		out := map[string]time.Duration{}
		for rows.Next() {
			var id string
			var created, first int64 // microseconds since the epoch (internal/store/sqlite)
			if err := rows.Scan(&id, &created, &first); err != nil {
				return nil, fmt.Errorf("first offers: %w", err)
			}
			out[id] = time.Duration(first-created) * time.Microsecond
		}
		return out, rows.Err()
	}}, nil
}
