package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/yolda/yolda/internal/warehouse"
)

// dimSQL is each dimension's grouping key over request_facts, and
// dimOut how the key is shown. Time keys group as truncated timestamps and
// are formatted only once per group, after aggregation. Only these strings
// ever reach a query's text; values are bound parameters.
var (
	dimSQL = map[warehouse.Dimension]string{
		warehouse.DimMonth:       `date_trunc('month', created_at)`,
		warehouse.DimDay:         `date_trunc('day', created_at)`,
		warehouse.DimHour:        `date_trunc('hour', created_at)`,
		warehouse.DimHourOfDay:   `CAST(hour_of_day AS BIGINT)`,
		warehouse.DimProvince:    `province`,
		warehouse.DimDistrict:    `district`,
		warehouse.DimInsurer:     `insurer`,
		warehouse.DimServiceType: `service_type`,
		warehouse.DimVehicleType: `vehicle_type`,
		warehouse.DimStatus:      `status`,
	}
	dimOut = map[warehouse.Dimension]string{
		warehouse.DimMonth: `strftime("month", '%Y-%m')`,
		warehouse.DimDay:   `strftime("day", '%Y-%m-%d')`,
		warehouse.DimHour:  `strftime("hour", '%Y-%m-%dT%H:00:00Z')`,
	}
)

// rollupRows is the daily rollup: its compacted rows and the deltas loads
// appended since (applyDelta), to be summed.
const rollupRows = `(SELECT * FROM request_rollup_daily UNION ALL SELECT * FROM request_rollup_delta)`

// rollupSQL is each rollup dimension's grouping key over
// request_rollup_daily (the others are its columns of the same name).
var rollupSQL = map[warehouse.Dimension]string{
	warehouse.DimMonth: `date_trunc('month', day)`,
	warehouse.DimDay:   `day`,
}

// grouped wraps an aggregate query over request_facts: inner is
// "SELECT <keys>, <measures> FROM ... WHERE ..." without its SELECT
// keyword's keys, which grouped adds with the GROUP BY; the outer query
// formats the keys and orders by them. measures names the outer columns.
func grouped(q warehouse.Query, aggregates, from string, measures []string) string {
	return groupedOver(q, dimSQL, aggregates, from, "", measures)
}

// groupedOver is grouped with other key expressions and a HAVING clause.
func groupedOver(q warehouse.Query, keySQL map[warehouse.Dimension]string, aggregates, from, having string, measures []string) string {
	if len(q.GroupBy) == 0 {
		return `SELECT ` + aggregates + ` ` + from
	}
	var keys, outs, pos []string
	for i, d := range q.GroupBy {
		key, ok := keySQL[d]
		if !ok {
			key = string(d)
		}
		keys = append(keys, key+` AS "`+string(d)+`"`)
		out := `"` + string(d) + `"`
		if f, ok := dimOut[d]; ok {
			out = f + ` AS "` + string(d) + `"`
		}
		outs = append(outs, out)
		pos = append(pos, fmt.Sprint(i+1))
	}
	for _, m := range measures {
		outs = append(outs, `"`+m+`"`)
	}
	order := make([]string, len(q.GroupBy))
	for i, d := range q.GroupBy {
		order[i] = `g."` + string(d) + `"`
	}
	return `SELECT ` + strings.Join(outs, ", ") + ` FROM (SELECT ` + strings.Join(keys, ", ") + `, ` + aggregates + ` ` + from +
		` GROUP BY ` + strings.Join(pos, ", ") + having + `) g ORDER BY ` + strings.Join(order, ", ")
}

// Requests implements warehouse.Store.
func (s *Store) Requests(ctx context.Context, q warehouse.Query) ([]warehouse.Row, error) {
	if warehouse.RollupServes(q) {
		having := ""
		if len(q.GroupBy) > 0 {
			having = ` HAVING sum(n) > 0`
		}
		query := groupedOver(q, rollupSQL, `CAST(coalesce(sum(n), 0) AS BIGINT) AS count,
    CAST(coalesce(sum(n) FILTER (WHERE status = 'completed'), 0) AS BIGINT) AS completed,
    CAST(coalesce(sum(n) FILTER (WHERE status = 'cancelled'), 0) AS BIGINT) AS cancelled,
    CAST(coalesce(sum(n) FILTER (WHERE status = 'unfulfilled'), 0) AS BIGINT) AS unfulfilled,
    CAST(coalesce(sum(n) FILTER (WHERE status = 'rejected'), 0) AS BIGINT) AS rejected`,
			`FROM `+rollupRows+` WHERE day >= CAST(? AS DATE) AND day < CAST(? AS DATE)`, having, warehouse.RequestMeasures)
		return s.rows(ctx, query+` LIMIT ?`, q.From, q.To, q.Limit+1)
	}
	query := grouped(q, `count(*) AS count,
    count(*) FILTER (WHERE status = 'completed') AS completed,
    count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
    count(*) FILTER (WHERE status = 'unfulfilled') AS unfulfilled,
    count(*) FILTER (WHERE status = 'rejected') AS rejected`,
		`FROM request_facts WHERE created_at >= ? AND created_at < ?`, warehouse.RequestMeasures) + ` LIMIT ?`
	return s.rows(ctx, query, q.From, q.To, q.Limit+1)
}

// slaCase is a CASE giving each fact's SLA in milliseconds, and its
// arguments.
func slaCase(sla warehouse.SLA) (string, []any) {
	var b strings.Builder
	var args []any
	b.WriteString("CASE insurer")
	for _, code := range sla.Insurers() {
		b.WriteString(" WHEN ? THEN ?")
		args = append(args, code, int64(sla.Seconds(code))*1000)
	}
	b.WriteString(" ELSE ? END")
	args = append(args, int64(sla.DefaultMinutes)*60_000)
	if len(args) == 1 {
		return "CAST(? AS BIGINT)", args
	}
	return b.String(), args
}

// SLA implements warehouse.Store. Each metric's two percentiles come
// from one list quantile: one sort per metric and group, not two.
func (s *Store) SLA(ctx context.Context, q warehouse.Query) ([]warehouse.Row, error) {
	slaExpr, args := slaCase(q.SLA)
	measures := []string{"requests", "assigned", "arrived", "assign_p", "arrive_p", "within_sla"}
	inner := grouped(q, `count(*) AS requests,
    count(time_to_assign_ms) AS assigned,
    count(time_to_arrive_ms) AS arrived,
    quantile_disc(time_to_assign_ms, [0.5, 0.9]) AS assign_p,
    quantile_disc(time_to_arrive_ms, [0.5, 0.9]) AS arrive_p,
    count(*) FILTER (WHERE time_to_arrive_ms <= `+slaExpr+`) AS within_sla`,
		`FROM request_facts WHERE created_at >= ? AND created_at < ?`, measures)
	var cols []string
	for _, d := range q.GroupBy {
		cols = append(cols, `"`+string(d)+`"`)
	}
	cols = append(cols, "requests", "assigned", "arrived",
		seconds("assign_p[1]")+" AS assign_p50_s", seconds("assign_p[2]")+" AS assign_p90_s",
		seconds("arrive_p[1]")+" AS arrive_p50_s", seconds("arrive_p[2]")+" AS arrive_p90_s", "within_sla")
	order := ""
	for i := range q.GroupBy {
		order += map[bool]string{true: " ORDER BY ", false: ", "}[i == 0] + fmt.Sprint(i+1)
	}
	query := `SELECT ` + strings.Join(cols, ", ") + ` FROM (` + inner + `)` + order + ` LIMIT ?`
	rows, err := s.rows(ctx, query, append(args, q.From, q.To, q.Limit+1)...)
	for _, r := range rows {
		r["sla_share"] = warehouse.Share(r["within_sla"], r["arrived"])
	}
	return rows, err
}

// Breaches implements warehouse.Store. The list is oldest first and
// short, so it is read a month at a time from the start of the range until
// it is full: without an index, ORDER BY created_at LIMIT over the whole
// range would read and sort every breach of every year.
func (s *Store) Breaches(ctx context.Context, q warehouse.Query) ([]warehouse.Row, error) {
	slaExpr, args := slaCase(q.SLA)
	query := `SELECT request_id, created_at, insurer, province, district, service_type, arrived_at,
    ` + seconds("time_to_arrive_ms") + ` AS time_to_arrive_s, CAST(round(sla_ms / 60000) AS BIGINT) AS sla_minutes
FROM (SELECT *, ` + slaExpr + ` AS sla_ms FROM request_facts WHERE created_at >= ? AND created_at < ?)
WHERE time_to_arrive_ms > sla_ms
ORDER BY created_at, request_id LIMIT ?`
	var out []warehouse.Row
	for from := q.From; from.Before(q.To) && len(out) <= q.Limit; {
		to := from.AddDate(0, 1, 0)
		if to.After(q.To) {
			to = q.To
		}
		rows, err := s.rows(ctx, query, append(slices.Clone(args), from, to, q.Limit+1-len(out))...)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
		from = to
	}
	return out, nil
}

// Insurers implements warehouse.Store.
func (s *Store) Insurers(ctx context.Context, q warehouse.Query) ([]warehouse.Row, error) {
	query := `WITH checks AS (
    SELECT insurer,
        count(*) FILTER (WHERE insurance_status IN ('approved', 'rejected', 'manual_review', 'waived')) AS checks,
        count(*) FILTER (WHERE insurance_status = 'approved') AS approved,
        count(*) FILTER (WHERE insurance_status = 'rejected') AS rejected,
        count(*) FILTER (WHERE insurance_status = 'manual_review') AS manual_review,
        count(*) FILTER (WHERE insurance_status = 'waived') AS waived,
        ` + seconds("quantile_disc(insurance_latency_ms, 0.5)") + ` AS decision_p50_s
    FROM request_facts WHERE created_at >= ? AND created_at < ? AND insurer <> '' GROUP BY insurer
), calls AS (
    SELECT insurer, count(*) AS calls, count(*) FILTER (WHERE outcome = 'error') AS errors,
        quantile_disc(latency_ms, 0.5) AS latency_p50_ms, quantile_disc(latency_ms, 0.99) AS latency_p99_ms
    FROM insurer_calls WHERE called_at >= ? AND called_at < ? GROUP BY insurer
)
SELECT coalesce(c.insurer, k.insurer) AS insurer,
    coalesce(c.checks, 0) AS checks, coalesce(c.approved, 0) AS approved, coalesce(c.rejected, 0) AS rejected,
    coalesce(c.manual_review, 0) AS manual_review, coalesce(c.waived, 0) AS waived, c.decision_p50_s,
    coalesce(k.calls, 0) AS calls, coalesce(k.errors, 0) AS errors, k.latency_p50_ms, k.latency_p99_ms
FROM checks c FULL OUTER JOIN calls k ON c.insurer = k.insurer
ORDER BY 1 LIMIT ?`
	return s.rows(ctx, query, q.From, q.To, q.From, q.To, q.Limit+1)
}

func (s *Store) rows(ctx context.Context, query string, args ...any) ([]warehouse.Row, error) {
	for i, a := range args {
		if t, ok := a.(time.Time); ok {
			args[i] = t.UTC()
		}
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return scanRows(rows)
}

func scanRows(rows *sql.Rows) ([]warehouse.Row, error) {
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []warehouse.Row
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		r := make(warehouse.Row, len(cols))
		for i, c := range cols {
			r[c] = warehouse.Normalize(vals[i])
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// seconds turns an expression in integer milliseconds into seconds.
func seconds(ms string) string { return `CAST(` + ms + ` AS DOUBLE) / 1000` }
