// Package duckdb is the embedded warehouse engine: one DuckDB file in the
// data dir, columnar, queried in-process. It is the default, for a
// deployment whose reports are served by one process (the `warehouse`
// role); for several report processes use internal/warehouse/postgres.
//
// DuckDB keeps one writer; Load and Rederive run one at a time on a
// dedicated connection, reports on the others. There are no indexes: the
// tables are append-mostly in time order, so DuckDB's per-row-group min/max
// (zone maps) on occurred_at and created_at prune old data as an index
// would, without the cost of one on every write. The small daily rollup
// (warehouse.RollupKey) has a primary key, for its upserts.
package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	duck "github.com/duckdb/duckdb-go/v2"

	"github.com/yolda/yolda/internal/warehouse"
)

// Store is the DuckDB warehouse.
type Store struct {
	connector *duck.Connector
	db        *sql.DB
	mu        sync.Mutex // one writer
	writer    *sql.Conn
}

var _ warehouse.Store = (*Store)(nil)

// schemaSQL creates the tables. Times are TIMESTAMP holding UTC (no time
// zone logic is needed, so none is loaded).
const schemaSQL = `
CREATE TABLE IF NOT EXISTS events (
    event_id    VARCHAR NOT NULL,
    type        VARCHAR NOT NULL,
    request_id  VARCHAR NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    seq         BIGINT,
    actor_role  VARCHAR NOT NULL,
    payload     VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS request_facts (
    request_id          VARCHAR NOT NULL,
    created_at          TIMESTAMP NOT NULL,
    hour_of_day         TINYINT NOT NULL,
    has_created         BOOLEAN NOT NULL,
    province            VARCHAR NOT NULL,
    district            VARCHAR NOT NULL,
    cell                VARCHAR NOT NULL,
    service_type        VARCHAR NOT NULL,
    vehicle_type        VARCHAR NOT NULL,
    insurer             VARCHAR NOT NULL,
    dest_province       VARCHAR NOT NULL,
    dest_cell           VARCHAR NOT NULL,
    status              VARCHAR NOT NULL,
    status_at           TIMESTAMP,
    assigned_at         TIMESTAMP,
    arrived_at          TIMESTAMP,
    completed_at        TIMESTAMP,
    cancelled_at        TIMESTAMP,
    time_to_assign_ms   BIGINT,
    time_to_arrive_ms   BIGINT,
    distance_km         DOUBLE,
    eta_s               DOUBLE,
    tow_distance_km     DOUBLE,
    insurance_status    VARCHAR NOT NULL,
    insurance_at        TIMESTAMP,
    insurance_latency_ms BIGINT,
    insurance_flags     VARCHAR NOT NULL,
    cancel_reason       VARCHAR NOT NULL,
    cancelled_by        VARCHAR NOT NULL,
    unfulfilled_reason  VARCHAR NOT NULL,
    events              BIGINT NOT NULL,
    last_event_at       TIMESTAMP,
    seq                 BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS request_rollup_daily (
    day          DATE NOT NULL,
    province     VARCHAR NOT NULL,
    insurer      VARCHAR NOT NULL,
    service_type VARCHAR NOT NULL,
    status       VARCHAR NOT NULL,
    n            BIGINT NOT NULL,
    PRIMARY KEY (day, province, insurer, service_type, status)
);
CREATE TABLE IF NOT EXISTS insurer_calls (
    event_id   VARCHAR NOT NULL,
    request_id VARCHAR NOT NULL,
    insurer    VARCHAR NOT NULL,
    called_at  TIMESTAMP NOT NULL,
    latency_ms DOUBLE NOT NULL,
    outcome    VARCHAR NOT NULL,
    error_kind VARCHAR NOT NULL,
    attempts   BIGINT NOT NULL
);
`

// Open opens (creating if needed) the warehouse file at path; "" is an
// in-memory warehouse (tests).
func Open(ctx context.Context, path string) (*Store, error) {
	if path != "" {
		// A process that keeps nothing else in its data directory (the
		// warehouse role on PostgreSQL) may be the first to need it.
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("warehouse directory: %w", err)
		}
	}
	c, err := duck.NewConnector(path, nil)
	if err != nil {
		return nil, fmt.Errorf("open duckdb %s: %w", path, err)
	}
	db := sql.OpenDB(c)
	s := &Store{connector: c, db: db}
	if s.writer, err = db.Conn(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("duckdb writer: %w", err)
	}
	if _, err := s.writer.ExecContext(ctx, schemaSQL); err != nil {
		s.Close()
		return nil, fmt.Errorf("duckdb schema: %w", err)
	}
	return s, nil
}

// Close closes the warehouse; it waits for a load in progress.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	if s.writer != nil {
		errs = append(errs, s.writer.Close())
		s.writer = nil
	}
	if s.db != nil {
		errs = append(errs, s.db.Close())
		s.db = nil
	}
	if s.connector != nil {
		errs = append(errs, s.connector.Close())
		s.connector = nil
	}
	return errors.Join(errs...)
}

// Ping reports whether the warehouse answers.
func (s *Store) Ping(ctx context.Context) error {
	if s.db == nil {
		return errors.New("duckdb warehouse closed")
	}
	return s.db.PingContext(ctx)
}

// Empty reports whether no event was loaded.
func (s *Store) Empty(ctx context.Context) (bool, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM events LIMIT 1)`).Scan(&n)
	return n == 0, err
}

// Load implements warehouse.Store.
func (s *Store) Load(ctx context.Context, evs []warehouse.Event, derive warehouse.DeriveFunc) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writer == nil {
		return 0, errors.New("duckdb warehouse closed")
	}
	tx := s.writer
	if err := begin(ctx, tx); err != nil {
		return 0, err
	}
	defer rollback(tx)
	fresh, err := s.newEvents(ctx, tx, evs)
	if err != nil {
		return 0, err
	}
	if len(fresh) == 0 {
		return 0, commit(ctx, tx)
	}
	if err := appendRows(ctx, tx, "events", warehouse.EventColumns, eventRows(fresh)); err != nil {
		return 0, err
	}
	var calls [][]any
	touched := map[string]bool{}
	for _, e := range fresh {
		if row, ok := warehouse.CallValues(e); ok {
			calls = append(calls, row)
		}
		if e.RequestID != "" {
			touched[e.RequestID] = true
		}
	}
	if err := appendRows(ctx, tx, "insurer_calls", warehouse.CallColumns, calls); err != nil {
		return 0, err
	}
	if err := s.refreshFacts(ctx, tx, keys(touched), derive); err != nil {
		return 0, err
	}
	return len(fresh), commit(ctx, tx)
}

// newEvents returns the events of evs (deduplicated) that the warehouse
// does not hold. An event's occurred_at is fixed with its id, so the search
// only reads the row groups of the batch's time span.
func (s *Store) newEvents(ctx context.Context, tx *sql.Conn, evs []warehouse.Event) ([]warehouse.Event, error) {
	byID := map[string]warehouse.Event{}
	lo, hi := evs[0].OccurredAt, evs[0].OccurredAt
	args := []any{nil, nil}
	for _, e := range evs {
		if _, dup := byID[e.ID]; dup {
			continue
		}
		byID[e.ID] = e
		args = append(args, e.ID)
		lo, hi = minTime(lo, e.OccurredAt), maxTime(hi, e.OccurredAt)
	}
	args[0], args[1] = lo.UTC(), hi.UTC()
	rows, err := tx.QueryContext(ctx, `SELECT event_id FROM events WHERE occurred_at BETWEEN ? AND ? AND event_id IN (`+
		placeholders(len(args)-2)+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("find loaded events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		delete(byID, id)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]warehouse.Event, 0, len(byID))
	for _, e := range evs {
		if _, ok := byID[e.ID]; ok {
			out = append(out, e)
			delete(byID, e.ID)
		}
	}
	return out, nil
}

// refreshFacts re-derives the facts of the given requests from all their
// events.
func (s *Store) refreshFacts(ctx context.Context, tx *sql.Conn, ids []string, derive warehouse.DeriveFunc) error {
	if len(ids) == 0 {
		return nil
	}
	for start := 0; start < len(ids); start += 1000 {
		chunk := ids[start:min(start+1000, len(ids))]
		byReq, err := eventsOf(ctx, tx, chunk)
		if err != nil {
			return err
		}
		facts := make([][]any, 0, len(chunk))
		for _, id := range chunk {
			facts = append(facts, warehouse.FactValues(derive(id, byReq[id])))
		}
		args := []any{earliestCreated(chunk)}
		for _, id := range chunk {
			args = append(args, id)
		}
		where := `created_at >= ? AND request_id IN (` + placeholders(len(chunk)) + `)`
		was, err := oldKeys(ctx, tx, where, args)
		if err != nil {
			return err
		}
		delta := warehouse.RollupDelta{}
		for i, id := range chunk {
			k, ok := was[id]
			now := warehouse.RollupKeyOf(factOf(facts[i]))
			if ok {
				delta.Move(&k, now)
			} else {
				delta.Move(nil, now)
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM request_facts WHERE `+where, args...); err != nil {
			return fmt.Errorf("replace facts: %w", err)
		}
		if err := appendRows(ctx, tx, "request_facts", warehouse.FactColumns, facts); err != nil {
			return err
		}
		if err := applyDelta(ctx, tx, delta); err != nil {
			return err
		}
	}
	return nil
}

// factOf reads back the rollup key fields of a FactValues row.
func factOf(row []any) warehouse.RequestFact {
	col := func(name string) any { return row[slices.Index(warehouse.FactColumns, name)] }
	return warehouse.RequestFact{CreatedAt: col("created_at").(time.Time), Province: col("province").(string),
		Insurer: col("insurer").(string), ServiceType: col("service_type").(string), Status: col("status").(string)}
}

// oldKeys reads the rollup keys of the facts where selects.
func oldKeys(ctx context.Context, tx *sql.Conn, where string, args []any) (map[string]warehouse.RollupKey, error) {
	rows, err := tx.QueryContext(ctx, `SELECT request_id, created_at, province, insurer, service_type, status FROM request_facts WHERE `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("read facts: %w", err)
	}
	defer rows.Close()
	out := map[string]warehouse.RollupKey{}
	for rows.Next() {
		var f warehouse.RequestFact
		if err := rows.Scan(&f.RequestID, &f.CreatedAt, &f.Province, &f.Insurer, &f.ServiceType, &f.Status); err != nil {
			return nil, err
		}
		out[f.RequestID] = warehouse.RollupKeyOf(f)
	}
	return out, rows.Err()
}

// applyDelta adds delta to the daily rollup and drops the rows that reach
// zero.
func applyDelta(ctx context.Context, tx *sql.Conn, delta warehouse.RollupDelta) error {
	keys := delta.Changes()
	if len(keys) == 0 {
		return nil
	}
	rows := make([][]any, len(keys))
	for i, k := range keys {
		rows[i] = []any{k.Day, k.Province, k.Insurer, k.ServiceType, k.Status, delta[k]}
	}
	const per = 4000
	for start := 0; start < len(rows); start += per {
		chunk := rows[start:min(start+per, len(rows))]
		var args []any
		var vals []string
		for _, r := range chunk {
			vals = append(vals, "(CAST(? AS DATE), ?, ?, ?, ?, ?)")
			args = append(args, r...)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO request_rollup_daily (day, province, insurer, service_type, status, n) VALUES `+
			strings.Join(vals, ", ")+` ON CONFLICT (day, province, insurer, service_type, status) DO UPDATE SET n = request_rollup_daily.n + EXCLUDED.n`,
			args...); err != nil {
			return fmt.Errorf("update rollup: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM request_rollup_daily WHERE n = 0`); err != nil {
		return fmt.Errorf("update rollup: %w", err)
	}
	return nil
}

// refreshRollup recomputes the daily rollup from the facts.
func refreshRollup(ctx context.Context, tx *sql.Conn) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM request_rollup_daily;
INSERT INTO request_rollup_daily SELECT CAST(created_at AS DATE), province, insurer, service_type, status, count(*)
FROM request_facts GROUP BY ALL`); err != nil {
		return fmt.Errorf("rollup: %w", err)
	}
	return nil
}

func eventsOf(ctx context.Context, tx *sql.Conn, ids []string) (map[string][]warehouse.Event, error) {
	args := []any{warehouse.EarliestFor(ids)}
	for _, id := range ids {
		args = append(args, id)
	}
	rows, err := tx.QueryContext(ctx, `SELECT request_id, payload FROM events WHERE occurred_at >= ? AND request_id IN (`+
		placeholders(len(ids))+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("read request events: %w", err)
	}
	defer rows.Close()
	out := map[string][]warehouse.Event{}
	for rows.Next() {
		var id, payload string
		if err := rows.Scan(&id, &payload); err != nil {
			return nil, err
		}
		e, err := warehouse.DecodeStored([]byte(payload))
		if err != nil {
			return nil, err
		}
		out[id] = append(out[id], e)
	}
	return out, rows.Err()
}

// earliestCreated is the earliest created_at among the requests' facts
// (their ids' time), zero if unknown.
func earliestCreated(ids []string) time.Time {
	t := warehouse.EarliestFor(ids)
	if t.IsZero() {
		return t
	}
	return t.Add(warehouse.LookBehind)
}

// Rederive implements warehouse.Store.
func (s *Store) Rederive(ctx context.Context, derive warehouse.DeriveFunc) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writer == nil {
		return 0, errors.New("duckdb warehouse closed")
	}
	tx := s.writer
	if err := begin(ctx, tx); err != nil {
		return 0, err
	}
	defer rollback(tx)
	if _, err := tx.ExecContext(ctx, `DELETE FROM request_facts; DELETE FROM insurer_calls; DELETE FROM request_rollup_daily;`); err != nil {
		return 0, fmt.Errorf("empty facts: %w", err)
	}
	// Read everything first: DuckDB does not interleave a streaming read
	// with writes on one connection. Payloads are small; a warehouse too big
	// for this is rebuilt month by month (docs/reports.md).
	rows, err := tx.QueryContext(ctx, `SELECT request_id, payload FROM events ORDER BY request_id, occurred_at, event_id`)
	if err != nil {
		return 0, fmt.Errorf("read events: %w", err)
	}
	type group struct {
		id  string
		evs []warehouse.Event
	}
	var groups []group
	var calls [][]any
	for rows.Next() {
		var id, payload string
		if err := rows.Scan(&id, &payload); err != nil {
			rows.Close()
			return 0, err
		}
		e, err := warehouse.DecodeStored([]byte(payload))
		if err != nil {
			rows.Close()
			return 0, err
		}
		if row, ok := warehouse.CallValues(e); ok {
			calls = append(calls, row)
		}
		if id == "" {
			continue
		}
		if len(groups) == 0 || groups[len(groups)-1].id != id {
			groups = append(groups, group{id: id})
		}
		groups[len(groups)-1].evs = append(groups[len(groups)-1].evs, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	facts := make([][]any, 0, len(groups))
	for _, g := range groups {
		facts = append(facts, warehouse.FactValues(derive(g.id, g.evs)))
	}
	if err := appendRows(ctx, tx, "request_facts", warehouse.FactColumns, facts); err != nil {
		return 0, err
	}
	if err := appendRows(ctx, tx, "insurer_calls", warehouse.CallColumns, calls); err != nil {
		return 0, err
	}
	if err := refreshRollup(ctx, tx); err != nil {
		return 0, err
	}
	return len(groups), commit(ctx, tx)
}

func eventRows(evs []warehouse.Event) [][]any {
	out := make([][]any, 0, len(evs))
	for _, e := range evs {
		row, err := warehouse.EventValues(e)
		if err != nil {
			continue // Event always encodes
		}
		out = append(out, row)
	}
	return out
}

// insertRows inserts rows with multi-row INSERT statements of bound
// parameters.
func insertRows(ctx context.Context, tx *sql.Conn, table string, cols []string, rows [][]any) error {
	const maxParams = 30_000
	per := max(1, maxParams/len(cols))
	for start := 0; start < len(rows); start += per {
		chunk := rows[start:min(start+per, len(rows))]
		var b strings.Builder
		b.WriteString("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES ")
		args := make([]any, 0, len(chunk)*len(cols))
		row := "(" + placeholders(len(cols)) + ")"
		for i, r := range chunk {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(row)
			args = append(args, r...)
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("insert %s: %w", table, err)
		}
	}
	return nil
}

// appendRows is insertRows for many rows, through DuckDB's appender (the
// bulk path: rebuild, benchmark). It joins the transaction open on conn.
func appendRows(ctx context.Context, conn *sql.Conn, table string, cols []string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	return conn.Raw(func(dc any) error {
		dconn, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("append %s: not a driver connection", table)
		}
		a, err := duck.NewAppenderWithColumns(dconn, "", "", table, cols)
		if err != nil {
			return fmt.Errorf("append %s: %w", table, err)
		}
		for _, r := range rows {
			vals := make([]driver.Value, len(r))
			for i, v := range r {
				vals[i] = v
			}
			if err := a.AppendRow(vals...); err != nil {
				a.Close()
				return fmt.Errorf("append %s: %w", table, err)
			}
		}
		if err := a.Close(); err != nil {
			return fmt.Errorf("append %s: %w", table, err)
		}
		return nil
	})
}

// DuckDB transactions are statements on the writer connection, so that
// the appender (which works on the raw connection) joins them.
func begin(ctx context.Context, c *sql.Conn) error {
	_, err := c.ExecContext(ctx, "BEGIN TRANSACTION")
	return err
}

func commit(ctx context.Context, c *sql.Conn) error {
	_, err := c.ExecContext(ctx, "COMMIT")
	return err
}

// rollback ends a transaction commit did not; after a commit it fails
// harmlessly ("no transaction is active").
func rollback(c *sql.Conn) {
	_, _ = c.ExecContext(context.Background(), "ROLLBACK")
}

func placeholders(n int) string {
	if n <= 0 {
		return "NULL"
	}
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Dump returns every row of every table as text: what an auditor (or the
// personal-data test) reads to see what the warehouse keeps.
func (s *Store) Dump(ctx context.Context) (string, error) {
	var b strings.Builder
	for _, table := range []string{"events", "request_facts", "insurer_calls", "request_rollup_daily"} {
		rows, err := s.db.QueryContext(ctx, `SELECT * FROM `+table)
		if err != nil {
			return "", err
		}
		got, err := scanRows(rows)
		rows.Close()
		if err != nil {
			return "", err
		}
		for _, r := range got {
			fmt.Fprintln(&b, table, r)
		}
	}
	return b.String(), nil
}

var _ warehouse.BulkLoader = (*Store)(nil)

// AppendFacts appends facts through the appender, in one transaction.
func (s *Store) AppendFacts(ctx context.Context, facts []warehouse.RequestFact) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows := make([][]any, len(facts))
	for i, f := range facts {
		rows[i] = warehouse.FactValues(f)
	}
	if err := begin(ctx, s.writer); err != nil {
		return err
	}
	defer rollback(s.writer)
	if err := appendRows(ctx, s.writer, "request_facts", warehouse.FactColumns, rows); err != nil {
		return err
	}
	return commit(ctx, s.writer)
}

// FinishBulk recomputes the rollup and checkpoints, so that the facts are
// in the file and reads start from compact tables.
func (s *Store) FinishBulk(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := begin(ctx, s.writer); err != nil {
		return err
	}
	defer rollback(s.writer)
	if err := refreshRollup(ctx, s.writer); err != nil {
		return err
	}
	if err := commit(ctx, s.writer); err != nil {
		return err
	}
	_, err := s.writer.ExecContext(ctx, "CHECKPOINT")
	return err
}
