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
	recent    *recent // the writer's; under mu
	// deltaRows is about how many rows request_rollup_delta holds; under
	// mu. compactRows is rollupCompactRows (tests lower it).
	deltaRows, compactRows int
}

// Options tune a Store.
type Options struct {
	// RecentEvents caps the events the writer keeps in memory, with their
	// requests, so that loading more events of a recent request asks
	// DuckDB nothing (recent.go). Default DefaultRecentEvents; negative:
	// none.
	RecentEvents int
}

// DefaultRecentEvents is about 80 MB of Go heap (some 400 bytes an
// event): the requests of the last minutes at a few hundred requests a
// second, of the last seconds at peak. An event of a request no longer
// held costs its load what every event cost before: a read of the
// request's events and fact.
const DefaultRecentEvents = 200_000

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
CREATE TABLE IF NOT EXISTS request_rollup_delta (
    day          DATE NOT NULL,
    province     VARCHAR NOT NULL,
    insurer      VARCHAR NOT NULL,
    service_type VARCHAR NOT NULL,
    status       VARCHAR NOT NULL,
    n            BIGINT NOT NULL
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
	return OpenWith(ctx, path, Options{})
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, path string, o Options) (*Store, error) {
	if o.RecentEvents == 0 {
		o.RecentEvents = DefaultRecentEvents
	}
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
	s := &Store{connector: c, db: db, recent: newRecent(max(o.RecentEvents, 0)), compactRows: rollupCompactRows}
	if s.writer, err = db.Conn(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("duckdb writer: %w", err)
	}
	if _, err := s.writer.ExecContext(ctx, schemaSQL); err != nil {
		s.Close()
		return nil, fmt.Errorf("duckdb schema: %w", err)
	}
	if err := s.writer.QueryRowContext(ctx, `SELECT count(*) FROM request_rollup_delta`).Scan(&s.deltaRows); err != nil {
		s.Close()
		return nil, fmt.Errorf("duckdb rollup: %w", err)
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
		s.recent.reset()
		return 0, err
	}
	defer rollback(tx)
	done, err := s.load(ctx, tx, evs, derive)
	if err == nil {
		err = commit(ctx, tx)
	}
	if err != nil {
		// Whatever the transaction left, recent knows nothing of it.
		s.recent.reset()
		return 0, err
	}
	for _, k := range done.held {
		s.recent.put(k)
	}
	if done.compacted {
		s.deltaRows = 0
	}
	s.deltaRows += done.deltaRows
	return done.n, nil
}

// loaded is what one load did, for the writer's state once it commits.
type loaded struct {
	n int // new events
	// held is what the warehouse holds of each request the load touched.
	held      []*knownRequest
	deltaRows int  // appended to request_rollup_delta
	compacted bool // the rollup deltas were folded first
}

// load writes the batch in the open transaction.
func (s *Store) load(ctx context.Context, tx *sql.Conn, evs []warehouse.Event, derive warehouse.DeriveFunc) (loaded, error) {
	var done loaded
	if !s.recent.known {
		newest, err := newestRequest(ctx, tx)
		if err != nil {
			return done, err
		}
		s.recent.setHorizon(newest)
	}
	fresh, err := s.newEvents(ctx, tx, evs)
	if err != nil || len(fresh) == 0 {
		return done, err
	}
	if err := appendRows(ctx, tx, "events", warehouse.EventColumns, eventRows(fresh)); err != nil {
		return done, err
	}
	var calls [][]any
	for _, e := range fresh {
		if row, ok := warehouse.CallValues(e); ok {
			calls = append(calls, row)
		}
	}
	if err := appendRows(ctx, tx, "insurer_calls", warehouse.CallColumns, calls); err != nil {
		return done, err
	}
	held, delta, err := s.refreshFacts(ctx, tx, fresh, derive)
	if err != nil {
		return done, err
	}
	if s.deltaRows >= s.compactRows {
		if err := compactRollup(ctx, tx); err != nil {
			return done, err
		}
		done.compacted = true
	}
	if done.deltaRows, err = applyDelta(ctx, tx, delta); err != nil {
		return done, err
	}
	done.n, done.held = len(fresh), held
	return done, nil
}

// newestRequest is the latest creation time of a request the warehouse
// holds (zero if none): the horizon recent starts from.
func newestRequest(ctx context.Context, tx *sql.Conn) (time.Time, error) {
	var t sql.NullTime
	if err := tx.QueryRowContext(ctx, `SELECT max(created_at) FROM request_facts`).Scan(&t); err != nil {
		return time.Time{}, fmt.Errorf("newest request: %w", err)
	}
	return t.Time, nil
}

// newEvents returns the events of evs (deduplicated, in batch order) that
// the warehouse does not hold. Recent answers for the requests it knows;
// DuckDB for the others, and an event's occurred_at is fixed with its id,
// so the search only reads the row groups of their time span.
func (s *Store) newEvents(ctx context.Context, tx *sql.Conn, evs []warehouse.Event) ([]warehouse.Event, error) {
	isNew := make(map[string]bool, len(evs))
	var ask []warehouse.Event
	for _, e := range evs {
		if _, seen := isNew[e.ID]; seen {
			continue
		}
		if e.RequestID != "" {
			if held, ok := s.recent.lookup(e.RequestID); ok {
				isNew[e.ID] = held == nil || !holds(held.evs, e.ID)
				continue
			}
		}
		isNew[e.ID] = true
		ask = append(ask, e)
	}
	if len(ask) > 0 {
		if err := loadedEvents(ctx, tx, ask, isNew); err != nil {
			return nil, err
		}
	}
	out := make([]warehouse.Event, 0, len(isNew))
	for _, e := range evs {
		if isNew[e.ID] {
			out = append(out, e)
			isNew[e.ID] = false
		}
	}
	return out, nil
}

// loadedEvents marks false in isNew the events of evs the warehouse holds.
func loadedEvents(ctx context.Context, tx *sql.Conn, evs []warehouse.Event, isNew map[string]bool) error {
	lo, hi := evs[0].OccurredAt, evs[0].OccurredAt
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
		lo, hi = minTime(lo, e.OccurredAt), maxTime(hi, e.OccurredAt)
	}
	rows, err := tx.QueryContext(ctx, `SELECT event_id FROM events WHERE occurred_at BETWEEN ? AND ? AND event_id IN `+inList,
		lo.UTC(), hi.UTC(), ids)
	if err != nil {
		return fmt.Errorf("find loaded events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err
		}
		isNew[id] = false
	}
	return rows.Err()
}

// inList is a list of strings bound as one parameter: a statement of one
// shape whatever the count, which DuckDB joins against rather than
// comparing each row with every constant (twice as fast as IN (?, ?, ...)
// at a few hundred ids).
const inList = `(SELECT unnest(?::VARCHAR[]))`

// prior is what the warehouse holds of a request before a load.
type prior struct {
	evs     []warehouse.Event
	key     warehouse.RollupKey
	hasFact bool
}

// refreshFacts re-derives the facts of the requests of fresh from all
// their events (those held and the fresh ones) and returns what the
// warehouse holds of each once the transaction commits, and how the
// rollup changes.
func (s *Store) refreshFacts(ctx context.Context, tx *sql.Conn, fresh []warehouse.Event, derive warehouse.DeriveFunc) ([]*knownRequest, warehouse.RollupDelta, error) {
	byReq := map[string][]warehouse.Event{}
	var ids, misses []string
	for _, e := range fresh {
		if e.RequestID == "" {
			continue
		}
		if _, ok := byReq[e.RequestID]; !ok {
			ids = append(ids, e.RequestID)
		}
		byReq[e.RequestID] = append(byReq[e.RequestID], e)
	}
	was := make(map[string]prior, len(ids))
	for _, id := range ids {
		held, ok := s.recent.lookup(id)
		switch {
		case !ok:
			misses = append(misses, id)
		case held != nil:
			was[id] = prior{evs: held.evs, key: held.key, hasFact: true}
		}
	}
	if err := readPrior(ctx, tx, misses, was); err != nil {
		return nil, nil, err
	}
	out := make([]*knownRequest, 0, len(ids))
	facts := make([][]any, 0, len(ids))
	var replace []string
	delta := warehouse.RollupDelta{}
	for _, id := range ids {
		p := was[id]
		all := slices.Concat(p.evs, byReq[id])
		f := derive(id, all)
		k := warehouse.RollupKeyOf(f)
		if p.hasFact {
			delta.Move(&p.key, k)
			replace = append(replace, id)
		} else {
			delta.Move(nil, k)
		}
		facts = append(facts, warehouse.FactValues(f))
		out = append(out, &knownRequest{id: id, evs: all, key: k})
	}
	if len(replace) > 0 {
		where, args := factsOf(replace)
		if _, err := tx.ExecContext(ctx, `DELETE FROM request_facts WHERE `+where, args...); err != nil {
			return nil, nil, fmt.Errorf("replace facts: %w", err)
		}
	}
	if err := appendRows(ctx, tx, "request_facts", warehouse.FactColumns, facts); err != nil {
		return nil, nil, err
	}
	return out, delta, nil
}

// readPrior reads from DuckDB the events and fact keys of the requests
// recent does not know, into was.
func readPrior(ctx context.Context, tx *sql.Conn, ids []string, was map[string]prior) error {
	if len(ids) == 0 {
		return nil
	}
	evs, err := eventsOf(ctx, tx, ids)
	if err != nil {
		return err
	}
	where, args := factsOf(ids)
	keys, err := oldKeys(ctx, tx, where, args)
	if err != nil {
		return err
	}
	for _, id := range ids {
		k, ok := keys[id]
		was[id] = prior{evs: evs[id], key: k, hasFact: ok}
	}
	return nil
}

// factsOf selects the facts of the requests ids.
func factsOf(ids []string) (where string, args []any) {
	return `created_at >= ? AND request_id IN ` + inList, []any{earliestCreated(ids), ids}
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

// rollupColumns are the columns of request_rollup_daily and
// request_rollup_delta.
var rollupColumns = []string{"day", "province", "insurer", "service_type", "status", "n"}

// rollupCompactRows is how many delta rows the writer lets accumulate
// before it folds them into the daily rollup: reports sum both tables, so
// the deltas only need to stay small next to it.
const rollupCompactRows = 20_000

// applyDelta adds delta to the rollup: as rows appended to
// request_rollup_delta, which reports add to request_rollup_daily. An
// upsert per load (ON CONFLICT) cost more than all the rest of a load's
// writes; one every rollupCompactRows rows costs nothing noticeable. It
// returns how many rows it appended.
func applyDelta(ctx context.Context, tx *sql.Conn, delta warehouse.RollupDelta) (int, error) {
	keys := delta.Changes()
	rows := make([][]any, len(keys))
	for i, k := range keys {
		rows[i] = []any{k.Day, k.Province, k.Insurer, k.ServiceType, k.Status, delta[k]}
	}
	return len(rows), appendRows(ctx, tx, "request_rollup_delta", rollupColumns, rows)
}

// compactRollup folds the delta rows into the daily rollup and drops the
// rows that reach zero.
func compactRollup(ctx context.Context, tx *sql.Conn) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO request_rollup_daily (day, province, insurer, service_type, status, n)
SELECT day, province, insurer, service_type, status, sum(n) FROM request_rollup_delta GROUP BY ALL HAVING sum(n) <> 0
ON CONFLICT (day, province, insurer, service_type, status) DO UPDATE SET n = request_rollup_daily.n + EXCLUDED.n;
DELETE FROM request_rollup_daily WHERE n = 0;
DELETE FROM request_rollup_delta;`); err != nil {
		return fmt.Errorf("compact rollup: %w", err)
	}
	return nil
}

// refreshRollup recomputes the daily rollup from the facts.
func refreshRollup(ctx context.Context, tx *sql.Conn) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM request_rollup_daily; DELETE FROM request_rollup_delta;
INSERT INTO request_rollup_daily SELECT CAST(created_at AS DATE), province, insurer, service_type, status, count(*)
FROM request_facts GROUP BY ALL`); err != nil {
		return fmt.Errorf("rollup: %w", err)
	}
	return nil
}

func eventsOf(ctx context.Context, tx *sql.Conn, ids []string) (map[string][]warehouse.Event, error) {
	rows, err := tx.QueryContext(ctx, `SELECT request_id, payload FROM events WHERE occurred_at >= ? AND request_id IN `+inList,
		warehouse.EarliestFor(ids), ids)
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
	// The facts are rewritten: what recent knows of them goes.
	s.recent.reset()
	tx := s.writer
	if err := begin(ctx, tx); err != nil {
		return 0, err
	}
	defer rollback(tx)
	if _, err := tx.ExecContext(ctx, `DELETE FROM request_facts; DELETE FROM insurer_calls; DELETE FROM request_rollup_daily; DELETE FROM request_rollup_delta;`); err != nil {
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
	if err := commit(ctx, tx); err != nil {
		return 0, err
	}
	s.deltaRows = 0
	return len(groups), nil
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

// appendRows appends rows through DuckDB's appender. It joins the transaction open on conn.
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
	for _, table := range []string{"events", "request_facts", "insurer_calls", "request_rollup_daily", "request_rollup_delta"} {
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
	// Facts without events: recent's horizon no longer holds.
	s.recent.reset()
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
	s.deltaRows = 0
	_, err := s.writer.ExecContext(ctx, "CHECKPOINT")
	return err
}
