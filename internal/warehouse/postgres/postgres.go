// Package postgres is the scale-out warehouse engine: a PostgreSQL
// database (or schema) of its own, apart from the operational one, for
// deployments where several processes serve reports. Facts are partitioned
// by month; the requests report reads a daily rollup (warehouse.RollupKey)
// kept exact in the load transaction. It passes internal/warehouse/warehousetest with the
// same results as the DuckDB engine.
//
// Several loaders may run at once (the `warehouse` role in several
// processes shares one durable consumer): each batch is one transaction
// that holds a lock per request it re-derives (so two batches with events
// of one request derive it one after the other, the second from both
// batches' events), and rollup rows are written in key order so that
// concurrent batches cannot deadlock on them.
package postgres

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/yolda/yolda/internal/warehouse"
)

//go:embed schema.sql
var schemaSQL string

// execer runs a statement: the pool, or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Store is the PostgreSQL warehouse.
type Store struct {
	pool *pgxpool.Pool

	mu     sync.Mutex
	months map[string]bool // partitions known to exist: "events 2026-11"
}

var _ warehouse.Store = (*Store)(nil)

// partitioned lists each partitioned table with its partition key.
var partitioned = []string{"events", "request_facts", "insurer_calls"}

// Open connects to the warehouse database at url (a search_path in it
// picks the schema) and creates its tables.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("warehouse url: %w", err)
	}
	// Report buckets (hour, day) are UTC whatever the server's zone.
	cfg.ConnConfig.RuntimeParams["timezone"] = "UTC"
	// Report queries sort (percentiles) and hash (groups) millions of rows;
	// in memory that is several times faster than on disk. The pool is
	// the warehouse's alone, so this costs the operational database
	// nothing.
	if _, set := cfg.ConnConfig.RuntimeParams["work_mem"]; !set {
		cfg.ConnConfig.RuntimeParams["work_mem"] = "128MB"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect warehouse: %w", err)
	}
	s := &Store{pool: pool, months: map[string]bool{}}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("warehouse schema: %w", err)
	}
	defer conn.Release()
	// One process creates the schema at a time.
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtext('yolda-warehouse-schema'))`); err != nil {
		return fmt.Errorf("warehouse schema lock: %w", err)
	}
	defer conn.Exec(context.Background(), `SELECT pg_advisory_unlock(hashtext('yolda-warehouse-schema'))`) //nolint:errcheck
	if _, err := conn.Exec(ctx, schemaSQL); err != nil {
		return fmt.Errorf("warehouse schema: %w", err)
	}
	return nil
}

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Ping reports whether the warehouse answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Empty reports whether no event was loaded.
func (s *Store) Empty(ctx context.Context) (bool, error) {
	var any bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events)`).Scan(&any)
	return !any, err
}

// ensureMonths creates the monthly partitions of table that times fall
// in. A partition is created outside the load's transaction (it locks the
// parent table briefly); two processes creating the same one is harmless.
func (s *Store) ensureMonths(ctx context.Context, db execer, table string, times []time.Time) error {
	var todo []time.Time
	s.mu.Lock()
	for _, t := range times {
		m := time.Date(t.UTC().Year(), t.UTC().Month(), 1, 0, 0, 0, 0, time.UTC)
		key := table + " " + m.Format("2006-01")
		if !s.months[key] {
			s.months[key] = true
			todo = append(todo, m)
		}
	}
	s.mu.Unlock()
	for _, m := range todo {
		name := fmt.Sprintf("%s_y%04dm%02d", table, m.Year(), int(m.Month()))
		sql := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s')`,
			name, table, m.Format(time.RFC3339), m.AddDate(0, 1, 0).Format(time.RFC3339))
		_, err := db.Exec(ctx, sql)
		var pe *pgconn.PgError
		if err != nil && !(errors.As(err, &pe) && (pe.Code == "42P07" || pe.Code == "23505")) {
			s.mu.Lock()
			delete(s.months, table+" "+m.Format("2006-01"))
			s.mu.Unlock()
			return fmt.Errorf("create partition %s: %w", name, err)
		}
	}
	return nil
}

// Load implements warehouse.Store.
func (s *Store) Load(ctx context.Context, evs []warehouse.Event, derive warehouse.DeriveFunc) (int, error) {
	evs = dedupe(evs)
	var evTimes, factTimes, callTimes []time.Time
	for _, e := range evs {
		evTimes = append(evTimes, e.OccurredAt)
		if t, ok := requestTime(e.RequestID); ok {
			factTimes = append(factTimes, t)
		}
		if row, ok := warehouse.CallValues(e); ok {
			callTimes = append(callTimes, row[3].(time.Time))
		}
	}
	for _, p := range []struct {
		table string
		times []time.Time
	}{{"events", evTimes}, {"request_facts", factTimes}, {"insurer_calls", callTimes}} {
		if err := s.ensureMonths(ctx, s.pool, p.table, p.times); err != nil {
			return 0, err
		}
	}

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // after Commit it is a no-op
	rows := make([][]any, 0, len(evs))
	for _, e := range evs {
		r, err := warehouse.EventValues(e)
		if err != nil {
			return 0, err
		}
		rows = append(rows, r)
	}
	if err := stage(ctx, tx, "events", warehouse.EventColumns, rows); err != nil {
		return 0, err
	}
	cols := strings.Join(warehouse.EventColumns, ", ")
	res, err := tx.Query(ctx, `INSERT INTO events (`+cols+`) SELECT `+cols+` FROM stage_events ON CONFLICT DO NOTHING RETURNING event_id`)
	if err != nil {
		return 0, fmt.Errorf("insert events: %w", err)
	}
	newIDs, err := pgx.CollectRows(res, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("insert events: %w", err)
	}
	fresh := map[string]bool{}
	for _, id := range newIDs {
		fresh[id] = true
	}
	var calls [][]any
	touched := map[string]bool{}
	for _, e := range evs {
		if !fresh[e.ID] {
			continue
		}
		if row, ok := warehouse.CallValues(e); ok {
			calls = append(calls, row)
		}
		if e.RequestID != "" {
			touched[e.RequestID] = true
		}
	}
	if len(calls) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"insurer_calls"}, warehouse.CallColumns, pgx.CopyFromRows(calls)); err != nil {
			return 0, fmt.Errorf("insert insurer calls: %w", err)
		}
	}
	if err := refreshFacts(ctx, tx, slices.Sorted(mapKeys(touched)), derive); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit load: %w", err)
	}
	return len(newIDs), nil
}

// stage copies rows into a transaction-local table shaped like table.
func stage(ctx context.Context, tx pgx.Tx, table string, cols []string, rows [][]any) error {
	name := "stage_" + table
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS `+name+` (LIKE `+table+`) ON COMMIT DELETE ROWS`); err != nil {
		return fmt.Errorf("stage %s: %w", table, err)
	}
	if _, err := tx.Exec(ctx, `TRUNCATE `+name); err != nil {
		return fmt.Errorf("stage %s: %w", table, err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{name}, cols, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("stage %s: %w", table, err)
	}
	return nil
}

// refreshFacts re-derives the facts of ids from all their events, replaces
// them, and moves their counts in the rollup from their old keys to their
// new ones.
func refreshFacts(ctx context.Context, tx pgx.Tx, ids []string, derive warehouse.DeriveFunc) error {
	if len(ids) == 0 {
		return nil
	}
	// Another process may be loading events of the same requests: wait for
	// it, so that the events read below (a new snapshot per statement)
	// include its, and the old facts are the ones it wrote. Locks are
	// taken in one order everywhere, so loaders cannot deadlock on them.
	if _, err := tx.Exec(ctx, `SELECT count(pg_advisory_xact_lock(k))
FROM (SELECT DISTINCT hashtextextended(id, 0) AS k FROM unnest($1::text[]) AS id ORDER BY k) locks`, ids); err != nil {
		return fmt.Errorf("lock requests: %w", err)
	}
	since := warehouse.EarliestFor(ids)
	rows, err := tx.Query(ctx, `SELECT request_id, payload FROM events WHERE request_id = ANY($1) AND occurred_at >= $2`, ids, since)
	if err != nil {
		return fmt.Errorf("read request events: %w", err)
	}
	byReq := map[string][]warehouse.Event{}
	var id, payload string
	_, err = pgx.ForEachRow(rows, []any{&id, &payload}, func() error {
		e, err := warehouse.DecodeStored([]byte(payload))
		byReq[id] = append(byReq[id], e)
		return err
	})
	if err != nil {
		return fmt.Errorf("read request events: %w", err)
	}

	created := since.Add(warehouse.LookBehind)
	old, err := tx.Query(ctx, `SELECT request_id, created_at, province, insurer, service_type, status
FROM request_facts WHERE request_id = ANY($1) AND created_at >= $2 ORDER BY request_id FOR UPDATE`, ids, created)
	if err != nil {
		return fmt.Errorf("lock facts: %w", err)
	}
	was := map[string]warehouse.RollupKey{}
	var of warehouse.RequestFact
	_, err = pgx.ForEachRow(old, []any{&of.RequestID, &of.CreatedAt, &of.Province, &of.Insurer, &of.ServiceType, &of.Status}, func() error {
		was[of.RequestID] = warehouse.RollupKeyOf(of)
		return nil
	})
	if err != nil {
		return fmt.Errorf("lock facts: %w", err)
	}
	delta := warehouse.RollupDelta{}
	facts := make([][]any, 0, len(ids))
	for _, id := range ids {
		f := derive(id, byReq[id])
		if k, ok := was[id]; ok {
			delta.Move(&k, warehouse.RollupKeyOf(f))
		} else {
			delta.Move(nil, warehouse.RollupKeyOf(f))
		}
		facts = append(facts, warehouse.FactValues(f))
	}
	if err := stage(ctx, tx, "request_facts", warehouse.FactColumns, facts); err != nil {
		return err
	}
	set := make([]string, 0, len(warehouse.FactColumns))
	for _, c := range warehouse.FactColumns[2:] {
		set = append(set, c+" = EXCLUDED."+c)
	}
	cols := strings.Join(warehouse.FactColumns, ", ")
	if _, err := tx.Exec(ctx, `INSERT INTO request_facts (`+cols+`) SELECT `+cols+` FROM stage_request_facts
ON CONFLICT (request_id, created_at) DO UPDATE SET `+strings.Join(set, ", ")); err != nil {
		return fmt.Errorf("replace facts: %w", err)
	}
	return applyDelta(ctx, tx, delta)
}

// applyDelta adds delta to the rollup, in key order, and drops the rows
// that reach zero.
func applyDelta(ctx context.Context, tx pgx.Tx, delta warehouse.RollupDelta) error {
	keys := delta.Changes()
	if len(keys) == 0 {
		return nil
	}
	var days []time.Time
	var prov, ins, svc, st []string
	var ns []int64
	for _, k := range keys {
		days = append(days, k.Day)
		prov, ins, svc, st = append(prov, k.Province), append(ins, k.Insurer), append(svc, k.ServiceType), append(st, k.Status)
		ns = append(ns, delta[k])
	}
	if _, err := tx.Exec(ctx, `INSERT INTO request_rollup_daily AS r (day, province, insurer, service_type, status, n)
SELECT * FROM unnest($1::date[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])
ON CONFLICT (day, province, insurer, service_type, status) DO UPDATE SET n = r.n + EXCLUDED.n`,
		days, prov, ins, svc, st, ns); err != nil {
		return fmt.Errorf("update rollup: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM request_rollup_daily WHERE n = 0 AND day = ANY($1::date[])`, days); err != nil {
		return fmt.Errorf("update rollup: %w", err)
	}
	return nil
}

// Rederive implements warehouse.Store. It reads the events from one
// snapshot on one connection while it writes the facts on another, in one
// transaction: reports see the old facts until it commits.
func (s *Store) Rederive(ctx context.Context, derive warehouse.DeriveFunc) (int, error) {
	w, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() {
		if w.Rollback(context.Background()) == nil {
			// Partitions made in the rolled-back transaction are gone.
			s.mu.Lock()
			s.months = map[string]bool{}
			s.mu.Unlock()
		}
	}()
	if _, err := w.Exec(ctx, `TRUNCATE request_facts, insurer_calls, request_rollup_daily`); err != nil {
		return 0, fmt.Errorf("empty facts: %w", err)
	}
	r, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return 0, err
	}
	defer r.Rollback(context.Background()) //nolint:errcheck
	rows, err := r.Query(ctx, `SELECT request_id, payload FROM events ORDER BY request_id, occurred_at, event_id`)
	if err != nil {
		return 0, fmt.Errorf("read events: %w", err)
	}
	var (
		n         int
		cur       string
		evs       []warehouse.Event
		facts     [][]any
		calls     [][]any
		id, body  string
		flushErr  error
		flushRows = func() error {
			var ft, ct []time.Time
			for _, f := range facts {
				ft = append(ft, f[1].(time.Time))
			}
			for _, c := range calls {
				ct = append(ct, c[3].(time.Time))
			}
			if err := s.ensureMonths(ctx, w, "request_facts", ft); err != nil {
				return err
			}
			if err := s.ensureMonths(ctx, w, "insurer_calls", ct); err != nil {
				return err
			}
			if len(facts) > 0 {
				if _, err := w.CopyFrom(ctx, pgx.Identifier{"request_facts"}, warehouse.FactColumns, pgx.CopyFromRows(facts)); err != nil {
					return fmt.Errorf("write facts: %w", err)
				}
			}
			if len(calls) > 0 {
				if _, err := w.CopyFrom(ctx, pgx.Identifier{"insurer_calls"}, warehouse.CallColumns, pgx.CopyFromRows(calls)); err != nil {
					return fmt.Errorf("write calls: %w", err)
				}
			}
			facts, calls = facts[:0], calls[:0]
			return nil
		}
	)
	endRequest := func() {
		if cur != "" {
			facts = append(facts, warehouse.FactValues(derive(cur, evs)))
			n++
		}
		evs = evs[:0]
	}
	_, err = pgx.ForEachRow(rows, []any{&id, &body}, func() error {
		e, err := warehouse.DecodeStored([]byte(body))
		if err != nil {
			return err
		}
		if row, ok := warehouse.CallValues(e); ok {
			calls = append(calls, row)
		}
		if id != cur {
			endRequest()
			cur = id
		}
		if id != "" {
			evs = append(evs, e)
		}
		if len(facts) >= 10_000 || len(calls) >= 10_000 {
			flushErr = flushRows()
		}
		return flushErr
	})
	if err != nil {
		return 0, fmt.Errorf("rederive: %w", err)
	}
	endRequest()
	if err := flushRows(); err != nil {
		return 0, err
	}
	if err := refreshRollup(ctx, w); err != nil {
		return 0, err
	}
	return n, w.Commit(ctx)
}

func refreshRollup(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `TRUNCATE request_rollup_daily`); err != nil {
		return fmt.Errorf("rollup: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO request_rollup_daily
SELECT (created_at AT TIME ZONE 'UTC')::date, province, insurer, service_type, status, count(*)
FROM request_facts GROUP BY 1, 2, 3, 4, 5`); err != nil {
		return fmt.Errorf("rollup: %w", err)
	}
	return nil
}

func requestTime(requestID string) (time.Time, bool) {
	t := warehouse.EarliestFor([]string{requestID})
	if t.IsZero() {
		return t, false
	}
	return t.Add(warehouse.LookBehind), true
}

func dedupe(evs []warehouse.Event) []warehouse.Event {
	seen := map[string]bool{}
	out := make([]warehouse.Event, 0, len(evs))
	for _, e := range evs {
		if !seen[e.ID] {
			seen[e.ID] = true
			out = append(out, e)
		}
	}
	return out
}

func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

var _ warehouse.BulkLoader = (*Store)(nil)

// AppendFacts copies facts in, creating their months' partitions; the
// rollup is left to FinishBulk.
func (s *Store) AppendFacts(ctx context.Context, facts []warehouse.RequestFact) error {
	rows := make([][]any, len(facts))
	times := make([]time.Time, len(facts))
	for i, f := range facts {
		rows[i] = warehouse.FactValues(f)
		times[i] = f.CreatedAt
	}
	if err := s.ensureMonths(ctx, s.pool, "request_facts", times); err != nil {
		return err
	}
	if _, err := s.pool.CopyFrom(ctx, pgx.Identifier{"request_facts"}, warehouse.FactColumns, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("copy facts: %w", err)
	}
	return nil
}

// FinishBulk recomputes the rollup from the facts and refreshes the
// planner's statistics.
func (s *Store) FinishBulk(ctx context.Context) error {
	if err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return refreshRollup(ctx, tx) }); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `ANALYZE request_facts; ANALYZE request_rollup_daily`)
	return err
}
