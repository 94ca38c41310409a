package benchmark

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/yolda/yolda/internal/warehouse"
)

// Engine is one warehouse under test: how to open it (again, for the cold
// runs) and its name.
type Engine struct {
	Name string
	Open func(ctx context.Context) (warehouse.Store, error)
}

// Options of a run.
type Options struct {
	Rows    int
	Engines []Engine
	// OperationalURL, when set, is a PostgreSQL schema (search_path in the
	// URL) holding the operational schema, empty: the same requests are
	// copied into it and the reports run there as plain SQL.
	OperationalURL string
	// Warm is how many warm runs each report gets (the median is shown).
	Warm int
	Out  io.Writer
}

// Report is one report query of the benchmark.
type Report struct {
	Name  string
	Query string // as the endpoint's query string
	run   func(s *warehouse.Service, ctx context.Context, q warehouse.Query) (warehouse.Report, error)
	// SQL is the same report on the operational schema: $1 and $2 are the
	// range.
	SQL string
}

// Reports are the report queries timed, over the whole year.
var Reports = []Report{
	{Name: "requests by province", Query: "group_by=province", run: (*warehouse.Service).Requests,
		SQL: `SELECT province, count(*), count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'cancelled'),
    count(*) FILTER (WHERE status = 'unfulfilled'), count(*) FILTER (WHERE status = 'rejected')
FROM requests WHERE created_at >= $1 AND created_at < $2 GROUP BY 1 ORDER BY 1`},
	{Name: "requests by hour of day and insurer", Query: "group_by=hour_of_day,insurer", run: (*warehouse.Service).Requests,
		SQL: `SELECT extract(hour FROM created_at AT TIME ZONE 'UTC' + interval '3 hours')::int, insurer, count(*),
    count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'cancelled'),
    count(*) FILTER (WHERE status = 'unfulfilled'), count(*) FILTER (WHERE status = 'rejected')
FROM requests WHERE created_at >= $1 AND created_at < $2 GROUP BY 1, 2 ORDER BY 1, 2`},
	{Name: "requests by month, service type, status", Query: "group_by=month,service_type,status", run: (*warehouse.Service).Requests,
		SQL: `SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM'), service_type, status, count(*)
FROM requests WHERE created_at >= $1 AND created_at < $2 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`},
	{Name: "SLA by province and service type", Query: "group_by=province,service_type", run: (*warehouse.Service).SLAReport,
		SQL: `SELECT r.province, r.service_type, count(*),
    percentile_disc(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.assigned_at - r.created_at)),
    percentile_disc(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM r.assigned_at - r.created_at)),
    percentile_disc(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM a.at - r.created_at)),
    percentile_disc(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM a.at - r.created_at)),
    count(*) FILTER (WHERE a.at - r.created_at <= interval '45 minutes')
FROM requests r LEFT JOIN request_timeline a ON a.request_id = r.id AND a.status = 'arrived'
WHERE r.created_at >= $1 AND r.created_at < $2 GROUP BY 1, 2 ORDER BY 1, 2`},
	{Name: "SLA breaches (first 1,000)", Query: "view=breaches", run: (*warehouse.Service).Breaches,
		SQL: `SELECT r.id, r.created_at, r.insurer, r.province, r.district, r.service_type, a.at
FROM requests r JOIN request_timeline a ON a.request_id = r.id AND a.status = 'arrived'
WHERE r.created_at >= $1 AND r.created_at < $2 AND a.at - r.created_at > interval '45 minutes'
ORDER BY r.created_at, r.id LIMIT 1001`},
	{Name: "insurers", Query: "", run: (*warehouse.Service).Insurers,
		SQL: `SELECT insurer, count(*) FILTER (WHERE insurance_status <> 'pending'),
    count(*) FILTER (WHERE insurance_status = 'approved'), count(*) FILTER (WHERE insurance_status = 'rejected'),
    count(*) FILTER (WHERE insurance_status = 'manual_review'), count(*) FILTER (WHERE insurance_status = 'waived'),
    percentile_disc(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM insurance_checked_at - created_at))
FROM requests WHERE created_at >= $1 AND created_at < $2 GROUP BY 1 ORDER BY 1`},
}

const chunk = 100_000

// Run loads opts.Rows synthetic facts into every engine (and the
// operational schema), then times every report, and prints a Markdown
// table per step.
func Run(ctx context.Context, opts Options) error {
	if opts.Warm <= 0 {
		opts.Warm = 5
	}
	out := opts.Out
	var op *pgxpool.Pool
	if opts.OperationalURL != "" {
		var err error
		if op, err = openOperational(ctx, opts.OperationalURL); err != nil {
			return err
		}
		defer op.Close()
	}
	stores := make([]warehouse.Store, len(opts.Engines))
	for i, e := range opts.Engines {
		s, err := e.Open(ctx)
		if err != nil {
			return fmt.Errorf("open %s: %w", e.Name, err)
		}
		stores[i] = s
	}
	took := make([]time.Duration, len(opts.Engines))
	var opTook time.Duration
	synth := NewSynth(1)
	facts := make([]warehouse.RequestFact, 0, chunk)
	for done := 0; done < opts.Rows; done += len(facts) {
		facts = facts[:0]
		for range min(chunk, opts.Rows-done) {
			facts = append(facts, synth.Next())
		}
		for i, s := range stores {
			start := time.Now()
			if err := s.(warehouse.BulkLoader).AppendFacts(ctx, facts); err != nil {
				return fmt.Errorf("%s: %w", opts.Engines[i].Name, err)
			}
			took[i] += time.Since(start)
		}
		if op != nil {
			start := time.Now()
			if err := copyOperational(ctx, op, facts); err != nil {
				return err
			}
			opTook += time.Since(start)
		}
	}
	fmt.Fprintf(out, "\n%d synthetic request facts, %s to %s\n\n", opts.Rows, YearStart.Format(time.DateOnly), YearEnd.Format(time.DateOnly))
	fmt.Fprintln(out, "| engine | load | rows/s | finish (rollup, statistics) |")
	fmt.Fprintln(out, "| --- | --- | --- | --- |")
	for i, s := range stores {
		start := time.Now()
		if err := s.(warehouse.BulkLoader).FinishBulk(ctx); err != nil {
			return err
		}
		fin := time.Since(start)
		fmt.Fprintf(out, "| %s | %s | %.0f | %s |\n", opts.Engines[i].Name, took[i].Round(time.Millisecond),
			float64(opts.Rows)/took[i].Seconds(), fin.Round(time.Millisecond))
		if err := s.Close(); err != nil {
			return err
		}
	}
	if op != nil {
		start := time.Now()
		if _, err := op.Exec(ctx, `ANALYZE requests; ANALYZE request_timeline`); err != nil {
			return err
		}
		fmt.Fprintf(out, "| operational PostgreSQL (requests + arrival timeline rows) | %s | %.0f | %s |\n",
			opTook.Round(time.Millisecond), float64(opts.Rows)/opTook.Seconds(), time.Since(start).Round(time.Millisecond))
	}

	q := warehouse.Query{Range: warehouse.Range{From: YearStart, To: YearEnd}}
	fmt.Fprintln(out, "\nReport query time over the whole year (cold: first query after opening; warm: median of", opts.Warm, "more)")
	fmt.Fprintln(out)
	header := "| report |"
	sep := "| --- |"
	for _, e := range opts.Engines {
		header += " " + e.Name + " cold | " + e.Name + " warm |"
		sep += " --- | --- |"
	}
	if op != nil {
		header += " operational SQL cold | operational SQL warm | operational / " + opts.Engines[0].Name + " (warm) |"
		sep += " --- | --- | --- |"
	}
	fmt.Fprintln(out, header)
	fmt.Fprintln(out, sep)
	// Each engine is reopened for its cold runs.
	svcs := make([]*warehouse.Service, len(opts.Engines))
	for i, e := range opts.Engines {
		s, err := e.Open(ctx)
		if err != nil {
			return err
		}
		defer s.Close()
		sla := warehouse.SLA{ByInsurer: map[string]int{}, DefaultMinutes: 45}
		if svcs[i], err = warehouse.New(s, warehouse.Options{SLA: sla}); err != nil {
			return err
		}
	}
	for _, rep := range Reports {
		rq := q
		rq.Limit = warehouse.MaxRows
		if rep.Query != "" {
			parsed, err := warehouse.ParseQuery(YearStart.Format(time.RFC3339), YearEnd.Format(time.RFC3339), strings.TrimPrefix(rep.Query, "group_by="), time.Now(), nil)
			if err == nil && strings.HasPrefix(rep.Query, "group_by=") {
				rq = parsed
			}
		}
		if rep.Query == "view=breaches" {
			rq.Limit = warehouse.DefaultBreaches
		}
		line := "| " + rep.Name + " (`" + rep.Query + "`) |"
		var firstWarm time.Duration
		for i, svc := range svcs {
			cold, warm, err := timeIt(opts.Warm, func() error { _, err := rep.run(svc, ctx, rq); return err })
			if err != nil {
				return fmt.Errorf("%s %s: %w", opts.Engines[i].Name, rep.Name, err)
			}
			if i == 0 {
				firstWarm = warm
			}
			line += fmt.Sprintf(" %s | %s |", Millis(cold), Millis(warm))
		}
		if op != nil {
			cold, warm, err := timeIt(opts.Warm, func() error {
				rows, err := op.Query(ctx, rep.SQL, YearStart, YearEnd)
				if err != nil {
					return err
				}
				for rows.Next() {
				}
				rows.Close()
				return rows.Err()
			})
			if err != nil {
				return fmt.Errorf("operational %s: %w", rep.Name, err)
			}
			line += fmt.Sprintf(" %s | %s | %.0f× |", Millis(cold), Millis(warm), warm.Seconds()/firstWarm.Seconds())
		}
		fmt.Fprintln(out, line)
	}
	return nil
}

func timeIt(warm int, f func() error) (cold, median time.Duration, err error) {
	start := time.Now()
	if err := f(); err != nil {
		return 0, 0, err
	}
	cold = time.Since(start)
	var ds []time.Duration
	for range warm {
		start := time.Now()
		if err := f(); err != nil {
			return 0, 0, err
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	return cold, ds[len(ds)/2], nil
}

// Millis shows a duration in whole milliseconds, as the benchmark tables do.
func Millis(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000) }

// openOperational connects to the operational schema; the caller has
// migrated it (yolda migrate, or postgres.Open) and it is empty.
func openOperational(ctx context.Context, url string) (*pgxpool.Pool, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, err
	}
	if _, err := pool.Exec(ctx, `INSERT INTO users (id, username, role, password_hash, created_at)
VALUES ('usr_bench', 'bench', 'customer', 'x', now()) ON CONFLICT DO NOTHING`); err != nil {
		pool.Close()
		return nil, fmt.Errorf("operational schema: %w", err)
	}
	return pool, nil
}

var opColumns = []string{"id", "owner_id", "status", "service_type", "lat", "lng", "address", "province", "district",
	"vehicle_plate", "vehicle_type", "insurer", "policy_number", "contact_name", "contact_phone",
	"insurance_status", "insurance_checked_at", "assigned_at", "created_at", "updated_at", "version"}

// copyOperational stores facts as the operational schema would hold the
// same requests: a requests row each, and the arrival's timeline row.
func copyOperational(ctx context.Context, pool *pgxpool.Pool, facts []warehouse.RequestFact) error {
	rows := make([][]any, len(facts))
	var arrivals [][]any
	for i, f := range facts {
		rows[i] = []any{f.RequestID, "usr_bench", f.Status, f.ServiceType, 41.0, 29.0, "Bağdat Cd. No:5", f.Province, f.District,
			"34 ABC 123", f.VehicleType, f.Insurer, "POL-000001", "Ayşe Yılmaz", "+905550000000",
			f.InsuranceStatus, f.InsuranceAt, f.AssignedAt, f.CreatedAt, f.StatusAt, 5}
		if f.ArrivedAt != nil {
			arrivals = append(arrivals, []any{f.RequestID, 5, "arrived", *f.ArrivedAt, "usr_driver", ""})
		}
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"requests"}, opColumns, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("copy operational requests: %w", err)
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"request_timeline"}, []string{"request_id", "seq", "status", "at", "actor_id", "reason"},
		pgx.CopyFromRows(arrivals)); err != nil {
		return fmt.Errorf("copy operational timeline: %w", err)
	}
	return nil
}
