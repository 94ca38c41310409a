package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/yolda/yolda/internal/warehouse"
)

// dimSQL is each dimension's expression over request_facts. Only these
// strings ever reach a query's text; values are bound parameters.
var dimSQL = map[warehouse.Dimension]string{
	warehouse.DimMonth:       `strftime(created_at, '%Y-%m')`,
	warehouse.DimDay:         `strftime(created_at, '%Y-%m-%d')`,
	warehouse.DimHour:        `strftime(created_at, '%Y-%m-%dT%H:00:00Z')`,
	warehouse.DimHourOfDay:   `CAST(hour(created_at + INTERVAL 3 HOUR) AS BIGINT)`,
	warehouse.DimProvince:    `province`,
	warehouse.DimDistrict:    `district`,
	warehouse.DimInsurer:     `insurer`,
	warehouse.DimServiceType: `service_type`,
	warehouse.DimVehicleType: `vehicle_type`,
	warehouse.DimStatus:      `status`,
}

// grouping returns the select list, GROUP BY and ORDER BY clauses of q's
// dimensions.
func grouping(q warehouse.Query) (sel, group, order string) {
	if len(q.GroupBy) == 0 {
		return "", "", ""
	}
	var cols, pos []string
	for i, d := range q.GroupBy {
		cols = append(cols, dimSQL[d]+` AS "`+string(d)+`"`)
		pos = append(pos, fmt.Sprint(i+1))
	}
	return strings.Join(cols, ", ") + ", ", " GROUP BY " + strings.Join(pos, ", "), " ORDER BY " + strings.Join(pos, ", ")
}

// Requests implements warehouse.Store.
func (s *Store) Requests(ctx context.Context, q warehouse.Query) ([]warehouse.Row, error) {
	sel, group, order := grouping(q)
	query := `SELECT ` + sel + `count(*) AS count,
    count(*) FILTER (WHERE status = 'completed') AS completed,
    count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
    count(*) FILTER (WHERE status = 'unfulfilled') AS unfulfilled,
    count(*) FILTER (WHERE status = 'rejected') AS rejected
FROM request_facts WHERE created_at >= ? AND created_at < ?` + group + order + ` LIMIT ?`
	return s.rows(ctx, query, q.From, q.To, q.Limit+1)
}

// slaCase is a CASE giving each fact's SLA in seconds, and its arguments.
func slaCase(sla warehouse.SLA) (string, []any) {
	var b strings.Builder
	var args []any
	b.WriteString("CASE insurer")
	for _, code := range sla.Insurers() {
		b.WriteString(" WHEN ? THEN ?")
		args = append(args, code, sla.Seconds(code))
	}
	b.WriteString(" ELSE ? END")
	args = append(args, float64(sla.DefaultMinutes)*60)
	if len(args) == 1 {
		return "CAST(? AS DOUBLE)", args
	}
	return b.String(), args
}

// SLA implements warehouse.Store.
func (s *Store) SLA(ctx context.Context, q warehouse.Query) ([]warehouse.Row, error) {
	sel, group, order := grouping(q)
	slaExpr, args := slaCase(q.SLA)
	query := `SELECT ` + sel + `count(*) AS requests,
    count(time_to_assign_s) AS assigned,
    count(time_to_arrive_s) AS arrived,
    quantile_disc(time_to_assign_s, 0.5) AS assign_p50_s,
    quantile_disc(time_to_assign_s, 0.9) AS assign_p90_s,
    quantile_disc(time_to_arrive_s, 0.5) AS arrive_p50_s,
    quantile_disc(time_to_arrive_s, 0.9) AS arrive_p90_s,
    count(*) FILTER (WHERE time_to_arrive_s <= ` + slaExpr + `) AS within_sla
FROM request_facts WHERE created_at >= ? AND created_at < ?` + group + order + ` LIMIT ?`
	rows, err := s.rows(ctx, query, append(args, q.From, q.To, q.Limit+1)...)
	for _, r := range rows {
		r["sla_share"] = warehouse.Share(r["within_sla"], r["arrived"])
	}
	return rows, err
}

// Breaches implements warehouse.Store.
func (s *Store) Breaches(ctx context.Context, q warehouse.Query) ([]warehouse.Row, error) {
	slaExpr, args := slaCase(q.SLA)
	query := `SELECT request_id, created_at, insurer, province, district, service_type, arrived_at, time_to_arrive_s,
    CAST(round(sla_s / 60) AS BIGINT) AS sla_minutes
FROM (SELECT *, ` + slaExpr + ` AS sla_s FROM request_facts WHERE created_at >= ? AND created_at < ?)
WHERE time_to_arrive_s > sla_s
ORDER BY created_at, request_id LIMIT ?`
	return s.rows(ctx, query, append(args, q.From, q.To, q.Limit+1)...)
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
        quantile_disc(insurance_latency_s, 0.5) AS decision_p50_s
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
