package warehouse

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/yolda/yolda/internal/validate"
)

// Dimension is a column a report may group by. Only these exist: a report
// query is built from this list and from bound parameters, never from a
// client's text.
type Dimension string

// The dimensions. Time buckets are in UTC except HourOfDay, which is the
// hour on the clock in Turkey (UTC+3 all year since 2016), where operators
// read "which hour".
const (
	DimProvince    Dimension = "province"
	DimDistrict    Dimension = "district"
	DimHour        Dimension = "hour"        // "2026-11-26T10:00:00Z"
	DimDay         Dimension = "day"         // "2026-11-26"
	DimMonth       Dimension = "month"       // "2026-11"
	DimHourOfDay   Dimension = "hour_of_day" // 0-23, Turkey time
	DimInsurer     Dimension = "insurer"
	DimServiceType Dimension = "service_type"
	DimVehicleType Dimension = "vehicle_type"
	DimStatus      Dimension = "status"
)

// Dimensions lists every dimension, in the order a report's columns come.
var Dimensions = []Dimension{DimMonth, DimDay, DimHour, DimHourOfDay, DimProvince, DimDistrict, DimInsurer, DimServiceType, DimVehicleType, DimStatus}

// TurkeyOffset is the fixed offset hour_of_day is read in.
const TurkeyOffset = 3 * time.Hour

// Limits of a report query.
const (
	// MaxRange is the longest range one query may cover.
	MaxRange = 10 * 366 * 24 * time.Hour
	// DefaultRange is the range when from is not given: the last 30 days.
	DefaultRange = 30 * 24 * time.Hour
	// MaxGroupBy is how many dimensions one query may group by.
	MaxGroupBy = 4
	// MaxRows caps a report's rows; past it the answer says truncated.
	MaxRows = 10_000
	// DefaultBreaches and MaxBreaches bound the SLA breach list.
	DefaultBreaches = 1_000
	MaxBreaches     = 10_000
)

// Range is a half-open time range [From, To) of request creation (or, for
// insurer calls, of the call).
type Range struct {
	From, To time.Time
}

// Query is a validated report query.
type Query struct {
	Range
	GroupBy []Dimension
	// Limit caps the rows (MaxRows; breaches: MaxBreaches). The store
	// returns at most Limit+1 rows so the caller can tell truncation.
	Limit int
	// SLA is each insurer's contracted arrival time; SLA reports only.
	SLA SLA
}

// SLA is the arrival time each insurer contracted for.
type SLA struct {
	// ByInsurer maps an insurer code to its arrival_sla_minutes.
	ByInsurer map[string]int
	// DefaultMinutes applies to insurers not in ByInsurer.
	DefaultMinutes int
}

// Seconds is the SLA of insurer in seconds.
func (s SLA) Seconds(insurer string) float64 {
	if m, ok := s.ByInsurer[insurer]; ok {
		return float64(m) * 60
	}
	return float64(s.DefaultMinutes) * 60
}

// Insurers is ByInsurer's codes, sorted, so that stores bind them in a
// stable order.
func (s SLA) Insurers() []string {
	out := make([]string, 0, len(s.ByInsurer))
	for k := range s.ByInsurer {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// ParseQuery validates the parameters of a report request. now ends the
// default range. allowed is the dimensions this report accepts (nil: all).
// Errors are validate.Errors naming the parameter.
func ParseQuery(from, to, groupBy string, now time.Time, allowed []Dimension) (Query, error) {
	var errs validate.Errors
	q := Query{Limit: MaxRows}
	parse := func(name, v string) time.Time {
		if v == "" {
			return time.Time{}
		}
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return t.UTC()
		}
		if t, err := time.Parse(time.DateOnly, v); err == nil {
			return t.UTC()
		}
		errs.Add(name, "must be an RFC 3339 time (2026-11-26T10:00:00Z) or a date (2026-11-26)")
		return time.Time{}
	}
	q.From, q.To = parse("from", from), parse("to", to)
	if to == "" {
		q.To = now.UTC()
	}
	if from == "" && !q.To.IsZero() {
		q.From = q.To.Add(-DefaultRange)
	}
	if len(errs) == 0 {
		switch {
		case !q.From.Before(q.To):
			errs.Add("to", "must be after from")
		case q.To.Sub(q.From) > MaxRange:
			errs.Add("to", "the range may cover at most 10 years")
		case q.From.Year() < 2000 || q.To.Year() > 2200:
			errs.Add("from", "must be between the years 2000 and 2200")
		}
	}
	if groupBy != "" {
		for _, part := range strings.Split(groupBy, ",") {
			d := Dimension(strings.TrimSpace(part))
			switch {
			case !slices.Contains(Dimensions, d) || (allowed != nil && !slices.Contains(allowed, d)):
				errs.Add("group_by", fmt.Sprintf("unknown dimension %q (one of: %s)", d, joinDims(cmpOr(allowed, Dimensions))))
			case slices.Contains(q.GroupBy, d):
				errs.Add("group_by", fmt.Sprintf("dimension %q given twice", d))
			default:
				q.GroupBy = append(q.GroupBy, d)
			}
		}
		if len(q.GroupBy) > MaxGroupBy {
			errs.Add("group_by", fmt.Sprintf("at most %d dimensions", MaxGroupBy))
		}
	}
	// Columns come in one order whatever order they were asked in, so that
	// the same question always has the same answer.
	slices.SortFunc(q.GroupBy, func(a, b Dimension) int { return slices.Index(Dimensions, a) - slices.Index(Dimensions, b) })
	return q, errs.Err()
}

func cmpOr(a, b []Dimension) []Dimension {
	if a != nil {
		return a
	}
	return b
}

func joinDims(ds []Dimension) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = string(d)
	}
	return strings.Join(s, ", ")
}

// Value is one cell of a report row: a string, an int64, a float64 or nil.
type Value = any

// Row is one row of a report: the group's dimension values and its
// measures, by column name.
type Row map[string]Value

// Report is a report's answer.
type Report struct {
	// Columns names the row keys in order: the dimensions grouped by, then
	// the measures.
	Columns   []string
	Rows      []Row
	Truncated bool
}

// Measures of each report, in column order.
var (
	RequestMeasures = []string{"count", "completed", "cancelled", "unfulfilled", "rejected"}
	SLAMeasures     = []string{"requests", "assigned", "arrived", "assign_p50_s", "assign_p90_s", "arrive_p50_s", "arrive_p90_s", "within_sla", "sla_share"}
	BreachColumns   = []string{"request_id", "created_at", "insurer", "province", "district", "service_type", "arrived_at", "time_to_arrive_s", "sla_minutes"}
	InsurerColumns  = []string{"insurer", "checks", "approved", "rejected", "manual_review", "waived", "decision_p50_s", "calls", "errors", "latency_p50_ms", "latency_p99_ms"}
)

// Columns is a report's column list for the query.
func Columns(q Query, measures []string) []string {
	out := make([]string, 0, len(q.GroupBy)+len(measures))
	for _, d := range q.GroupBy {
		out = append(out, string(d))
	}
	return append(out, measures...)
}

// ErrUnavailable: the warehouse cannot answer now (closed, or its engine
// does not respond).
var ErrUnavailable = errors.New("warehouse unavailable")
