package warehousetest

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/yolda/yolda/internal/warehouse"
)

// The oracle computes each report from the fixture's truth, the plain Go
// way, to compare every engine against. It shares no code with the
// engines' queries.

func (t Truth) dim(d warehouse.Dimension) warehouse.Value {
	at := t.Created.Truncate(time.Millisecond).UTC()
	switch d {
	case warehouse.DimMonth:
		return at.Format("2006-01")
	case warehouse.DimDay:
		return at.Format("2006-01-02")
	case warehouse.DimHour:
		return at.Format("2006-01-02T15:00:00Z")
	case warehouse.DimHourOfDay:
		return int64(at.Add(3 * time.Hour).Hour())
	case warehouse.DimProvince:
		return t.Province
	case warehouse.DimDistrict:
		return t.District
	case warehouse.DimInsurer:
		return t.Insurer
	case warehouse.DimServiceType:
		return t.Service
	case warehouse.DimVehicleType:
		return t.Vehicle
	case warehouse.DimStatus:
		return t.Status
	}
	panic("unknown dimension " + d)
}

type group struct {
	key  []warehouse.Value
	reqs []Truth
}

func groups(f Fixture, q warehouse.Query) []group {
	byKey := map[string]*group{}
	var out []*group
	for _, t := range f.Requests {
		at := t.Created.Truncate(time.Millisecond)
		if at.Before(q.From) || !at.Before(q.To) {
			continue
		}
		var key []warehouse.Value
		for _, d := range q.GroupBy {
			key = append(key, t.dim(d))
		}
		k := fmt.Sprint(key...)
		g := byKey[k]
		if g == nil {
			g = &group{key: key}
			byKey[k] = g
			out = append(out, g)
		}
		g.reqs = append(g.reqs, t)
	}
	if len(q.GroupBy) == 0 && len(out) == 0 {
		out = append(out, &group{})
	}
	slices.SortFunc(out, func(a, b *group) int { return compareKeys(a.key, b.key) })
	res := make([]group, len(out))
	for i, g := range out {
		res[i] = *g
	}
	return res
}

func compareKeys(a, b []warehouse.Value) int {
	for i := range a {
		var c int
		switch x := a[i].(type) {
		case string:
			c = strings.Compare(x, b[i].(string)) // byte order, as the engines sort
		case int64:
			c = cmp.Compare(x, b[i].(int64))
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

func row(q warehouse.Query, g group) warehouse.Row {
	r := warehouse.Row{}
	for i, d := range q.GroupBy {
		r[string(d)] = g.key[i]
	}
	return r
}

func count(ts []Truth, ok func(Truth) bool) int64 {
	n := int64(0)
	for _, t := range ts {
		if ok(t) {
			n++
		}
	}
	return n
}

// percentile is the nearest-rank percentile (SQL's percentile_disc): the
// smallest value with at least p of the values at or below it.
func percentile(vals []float64, p float64) warehouse.Value {
	if len(vals) == 0 {
		return nil
	}
	s := slices.Clone(vals)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(i, 0)]
}

func values(ts []Truth, get func(Truth) *float64) []float64 {
	var out []float64
	for _, t := range ts {
		if v := get(t); v != nil {
			out = append(out, *v)
		}
	}
	return out
}

// ExpectRequests is the requests report of the fixture.
func ExpectRequests(f Fixture, q warehouse.Query) []warehouse.Row {
	var out []warehouse.Row
	for _, g := range groups(f, q) {
		r := row(q, g)
		r["count"] = int64(len(g.reqs))
		for _, st := range []string{"completed", "cancelled", "unfulfilled", "rejected"} {
			r[st] = count(g.reqs, func(t Truth) bool { return t.Status == st })
		}
		out = append(out, r)
	}
	return out
}

// ExpectSLA is the SLA report of the fixture.
func ExpectSLA(f Fixture, q warehouse.Query) []warehouse.Row {
	var out []warehouse.Row
	for _, g := range groups(f, q) {
		r := row(q, g)
		assign := values(g.reqs, func(t Truth) *float64 { return t.AssignS })
		arrive := values(g.reqs, func(t Truth) *float64 { return t.ArriveS })
		r["requests"] = int64(len(g.reqs))
		r["assigned"] = int64(len(assign))
		r["arrived"] = int64(len(arrive))
		r["assign_p50_s"], r["assign_p90_s"] = percentile(assign, 0.5), percentile(assign, 0.9)
		r["arrive_p50_s"], r["arrive_p90_s"] = percentile(arrive, 0.5), percentile(arrive, 0.9)
		r["within_sla"] = count(g.reqs, func(t Truth) bool { return t.ArriveS != nil && *t.ArriveS <= q.SLA.Seconds(t.Insurer) })
		r["sla_share"] = warehouse.Share(r["within_sla"], r["arrived"])
		out = append(out, r)
	}
	return out
}

// ExpectBreaches is the SLA breach list of the fixture.
func ExpectBreaches(f Fixture, q warehouse.Query) []warehouse.Row {
	var late []Truth
	for _, t := range f.Requests {
		at := t.Created.Truncate(time.Millisecond)
		if !at.Before(q.From) && at.Before(q.To) && t.ArriveS != nil && *t.ArriveS > q.SLA.Seconds(t.Insurer) {
			late = append(late, t)
		}
	}
	slices.SortFunc(late, func(a, b Truth) int {
		return cmp.Or(a.Created.Truncate(time.Millisecond).Compare(b.Created.Truncate(time.Millisecond)), strings.Compare(a.ID, b.ID))
	})
	var out []warehouse.Row
	for _, t := range late {
		out = append(out, warehouse.Row{
			"request_id": t.ID, "created_at": t.Created.Truncate(time.Millisecond).UTC().Format(time.RFC3339Nano),
			"insurer": t.Insurer, "province": t.Province, "district": t.District, "service_type": t.Service,
			"arrived_at":       t.Created.Add(time.Duration(math.Round(*t.ArriveS*1000)) * time.Millisecond).UTC().Format(time.RFC3339Nano),
			"time_to_arrive_s": *t.ArriveS, "sla_minutes": int64(math.Round(q.SLA.Seconds(t.Insurer) / 60)),
		})
	}
	return out
}

// ExpectInsurers is the insurers report of the fixture.
func ExpectInsurers(f Fixture, q warehouse.Query) []warehouse.Row {
	by := map[string][]Truth{}
	calls := map[string][]CallTruth{}
	for _, t := range f.Requests {
		at := t.Created.Truncate(time.Millisecond)
		if !at.Before(q.From) && at.Before(q.To) {
			by[t.Insurer] = append(by[t.Insurer], t)
		}
		for _, c := range t.Calls {
			if !c.At.Before(q.From) && c.At.Before(q.To) {
				calls[t.Insurer] = append(calls[t.Insurer], c)
			}
		}
	}
	names := map[string]bool{}
	for k := range by {
		names[k] = true
	}
	for k := range calls {
		names[k] = true
	}
	var out []warehouse.Row
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range names {
			if !yield(k) {
				return
			}
		}
	}) {
		ts, cs := by[name], calls[name]
		r := warehouse.Row{"insurer": name}
		r["checks"] = count(ts, func(t Truth) bool { return t.Insurance != "pending" })
		for _, st := range []string{"approved", "rejected", "manual_review", "waived"} {
			r[st] = count(ts, func(t Truth) bool { return t.Insurance == st })
		}
		r["decision_p50_s"] = percentile(values(ts, func(t Truth) *float64 { return t.InsuranceS }), 0.5)
		var lat []float64
		errs := int64(0)
		for _, c := range cs {
			lat = append(lat, c.LatencyMs)
			if c.Error {
				errs++
			}
		}
		r["calls"], r["errors"] = int64(len(cs)), errs
		r["latency_p50_ms"], r["latency_p99_ms"] = percentile(lat, 0.5), percentile(lat, 0.99)
		out = append(out, r)
	}
	return out
}
