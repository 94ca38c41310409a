package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/yolda/yolda/internal/warehouse"
)

// dimSQL is each dimension's expression over a table with created_at (the
// facts) or day (the rollup: the same expressions over its day column).
// Only these strings ever reach a query's text; values are bound
// parameters. The session's time zone is UTC (Open).
func dimSQL(d warehouse.Dimension, at string) string {
	switch d {
	case warehouse.DimMonth:
		return `to_char(` + at + `, 'YYYY-MM') COLLATE "C"`
	case warehouse.DimDay:
		return `to_char(` + at + `, 'YYYY-MM-DD') COLLATE "C"`
	case warehouse.DimHour:
		return `to_char(` + at + `, 'YYYY-MM-DD"T"HH24:00:00"Z"') COLLATE "C"`
	case warehouse.DimHourOfDay:
		return `hour_of_day::bigint`
	}
	return string(d) // a column of the same name
}

func grouping(q warehouse.Query, at string) (sel, group, order string) {
	if len(q.GroupBy) == 0 {
		return "", "", ""
	}
	var cols, pos []string
	for i, d := range q.GroupBy {
		cols = append(cols, dimSQL(d, at)+` AS "`+string(d)+`"`)
		pos = append(pos, fmt.Sprint(i+1))
	}
	return strings.Join(cols, ", ") + ", ", " GROUP BY " + strings.Join(pos, ", "), " ORDER BY " + strings.Join(pos, ", ")
}

// Requests implements warehouse.Store.
func (s *Store) Requests(ctx context.Context, q warehouse.Query) ([]warehouse.Row, error) {
	if warehouse.RollupServes(q) {
		sel, group, order := grouping(q, "day")
		having := ""
		if group != "" {
			having = " HAVING sum(n) > 0"
		}
		return s.rows(ctx, `SELECT `+sel+`coalesce(sum(n), 0)::bigint AS count,
    coalesce(sum(n) FILTER (WHERE status = 'completed'), 0)::bigint AS completed,
    coalesce(sum(n) FILTER (WHERE status = 'cancelled'), 0)::bigint AS cancelled,
    coalesce(sum(n) FILTER (WHERE status = 'unfulfilled'), 0)::bigint AS unfulfilled,
    coalesce(sum(n) FILTER (WHERE status = 'rejected'), 0)::bigint AS rejected
FROM request_rollup_daily WHERE day >= $1::date AND day < $2::date`+group+having+order+` LIMIT $3`, q.From, q.To, q.Limit+1)
	}
	sel, group, order := grouping(q, "created_at")
	return s.rows(ctx, `SELECT `+sel+`count(*) AS count,
    count(*) FILTER (WHERE status = 'completed') AS completed,
    count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
    count(*) FILTER (WHERE status = 'unfulfilled') AS unfulfilled,
    count(*) FILTER (WHERE status = 'rejected') AS rejected
FROM request_facts WHERE created_at >= $1 AND created_at < $2`+group+order+` LIMIT $3`, q.From, q.To, q.Limit+1)
}

// slaCase is a CASE giving each fact's SLA in milliseconds; its parameters
// start at $first.
func slaCase(sla warehouse.SLA, first int) (string, []any) {
	if len(sla.ByInsurer) == 0 {
		return fmt.Sprintf("$%d::bigint", first), []any{int64(sla.DefaultMinutes) * 60_000}
	}
	var b strings.Builder
	var args []any
	b.WriteString("CASE insurer")
	for _, code := range sla.Insurers() {
		fmt.Fprintf(&b, " WHEN $%d THEN $%d::bigint", first+len(args), first+len(args)+1)
		args = append(args, code, int64(sla.Seconds(code))*1000)
	}
	fmt.Fprintf(&b, " ELSE $%d::bigint END", first+len(args))
	args = append(args, int64(sla.DefaultMinutes)*60_000)
	return b.String(), args
}

// SLA implements warehouse.Store.
func (s *Store) SLA(ctx context.Context, q warehouse.Query) ([]warehouse.Row, error) {
	sel, group, order := grouping(q, "created_at")
	slaExpr, args := slaCase(q.SLA, 4)
	rows, err := s.rows(ctx, `SELECT `+sel+`count(*) AS requests,
    count(time_to_assign_ms) AS assigned,
    count(time_to_arrive_ms) AS arrived,
    (percentile_disc(0.5) WITHIN GROUP (ORDER BY time_to_assign_ms))::float8 / 1000 AS assign_p50_s,
    (percentile_disc(0.9) WITHIN GROUP (ORDER BY time_to_assign_ms))::float8 / 1000 AS assign_p90_s,
    (percentile_disc(0.5) WITHIN GROUP (ORDER BY time_to_arrive_ms))::float8 / 1000 AS arrive_p50_s,
    (percentile_disc(0.9) WITHIN GROUP (ORDER BY time_to_arrive_ms))::float8 / 1000 AS arrive_p90_s,
    count(*) FILTER (WHERE time_to_arrive_ms <= `+slaExpr+`) AS within_sla
FROM request_facts WHERE created_at >= $1 AND created_at < $2`+group+order+` LIMIT $3`,
		append([]any{q.From, q.To, q.Limit + 1}, args...)...)
	for _, r := range rows {
		r["sla_share"] = warehouse.Share(r["within_sla"], r["arrived"])
	}
	return rows, err
}

// Breaches implements warehouse.Store.
func (s *Store) Breaches(ctx context.Context, q warehouse.Query) ([]warehouse.Row, error) {
	slaExpr, args := slaCase(q.SLA, 4)
	return s.rows(ctx, `SELECT request_id, created_at, insurer, province, district, service_type, arrived_at,
    time_to_arrive_ms::float8 / 1000 AS time_to_arrive_s, round(sla_ms / 60000.0)::bigint AS sla_minutes
FROM (SELECT *, `+slaExpr+` AS sla_ms FROM request_facts
      WHERE created_at >= $1 AND created_at < $2 AND time_to_arrive_ms IS NOT NULL) f
WHERE time_to_arrive_ms > sla_ms
ORDER BY created_at, request_id LIMIT $3`, append([]any{q.From, q.To, q.Limit + 1}, args...)...)
}

// Insurers implements warehouse.Store.
func (s *Store) Insurers(ctx context.Context, q warehouse.Query) ([]warehouse.Row, error) {
	return s.rows(ctx, `WITH checks AS (
    SELECT insurer,
        count(*) FILTER (WHERE insurance_status IN ('approved', 'rejected', 'manual_review', 'waived')) AS checks,
        count(*) FILTER (WHERE insurance_status = 'approved') AS approved,
        count(*) FILTER (WHERE insurance_status = 'rejected') AS rejected,
        count(*) FILTER (WHERE insurance_status = 'manual_review') AS manual_review,
        count(*) FILTER (WHERE insurance_status = 'waived') AS waived,
        (percentile_disc(0.5) WITHIN GROUP (ORDER BY insurance_latency_ms))::float8 / 1000 AS decision_p50_s
    FROM request_facts WHERE created_at >= $1 AND created_at < $2 AND insurer <> '' GROUP BY insurer
), calls AS (
    SELECT insurer, count(*) AS calls, count(*) FILTER (WHERE outcome = 'error') AS errors,
        percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_ms) AS latency_p50_ms,
        percentile_disc(0.99) WITHIN GROUP (ORDER BY latency_ms) AS latency_p99_ms
    FROM insurer_calls WHERE called_at >= $1 AND called_at < $2 GROUP BY insurer
)
SELECT coalesce(c.insurer, k.insurer) AS insurer,
    coalesce(c.checks, 0) AS checks, coalesce(c.approved, 0) AS approved, coalesce(c.rejected, 0) AS rejected,
    coalesce(c.manual_review, 0) AS manual_review, coalesce(c.waived, 0) AS waived, c.decision_p50_s,
    coalesce(k.calls, 0) AS calls, coalesce(k.errors, 0) AS errors, k.latency_p50_ms, k.latency_p99_ms
FROM checks c FULL OUTER JOIN calls k ON c.insurer = k.insurer
ORDER BY 1 LIMIT $3`, q.From, q.To, q.Limit+1)
}

func (s *Store) rows(ctx context.Context, query string, args ...any) ([]warehouse.Row, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return scanRows(rows)
}

func scanRows(rows pgx.Rows) ([]warehouse.Row, error) {
	defer rows.Close()
	fields := rows.FieldDescriptions()
	var out []warehouse.Row
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, err
		}
		r := make(warehouse.Row, len(vals))
		for i, v := range vals {
			r[fields[i].Name] = warehouse.Normalize(v)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Dump returns every row of every table as text: what an auditor (or the
// personal-data test) reads to see what the warehouse keeps.
func (s *Store) Dump(ctx context.Context) (string, error) {
	var b strings.Builder
	for _, table := range []string{"events", "request_facts", "insurer_calls", "request_rollup_daily"} {
		rows, err := s.pool.Query(ctx, `SELECT * FROM `+table)
		if err != nil {
			return "", err
		}
		got, err := scanRows(rows)
		if err != nil {
			return "", err
		}
		for _, r := range got {
			fmt.Fprintln(&b, table, r)
		}
	}
	return b.String(), nil
}
