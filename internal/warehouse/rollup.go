package warehouse

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// The daily rollup: requests per UTC day, province, insurer, service type
// and status. Both engines keep it exact in the load transaction (a fact
// that changes moves its count from its old key to its new one) and answer
// the requests report from it when they can (RollupServes): at ten million
// requests a year it is about a sixth of the facts. Hour, hour of day,
// district and vehicle type are not in it; a report grouped by one of
// them reads the facts.

// RollupKey is one row key of the daily rollup.
type RollupKey struct {
	Day                                    time.Time // midnight UTC
	Province, Insurer, ServiceType, Status string
}

// RollupKeyOf is the rollup row a fact counts in.
func RollupKeyOf(f RequestFact) RollupKey {
	c := f.CreatedAt.UTC()
	return RollupKey{Day: time.Date(c.Year(), c.Month(), c.Day(), 0, 0, 0, 0, time.UTC),
		Province: f.Province, Insurer: f.Insurer, ServiceType: f.ServiceType, Status: f.Status}
}

// Compare orders keys: stores write rollup rows in this order, so that
// concurrent loads cannot deadlock on them.
func (k RollupKey) Compare(o RollupKey) int {
	return cmp.Or(k.Day.Compare(o.Day), strings.Compare(k.Province, o.Province), strings.Compare(k.Insurer, o.Insurer),
		strings.Compare(k.ServiceType, o.ServiceType), strings.Compare(k.Status, o.Status))
}

// RollupDelta is how a load changes the rollup's counts.
type RollupDelta map[RollupKey]int64

// Move records a fact leaving its old key (nil: a new fact) for a new one.
func (d RollupDelta) Move(old *RollupKey, now RollupKey) {
	if old != nil {
		d[*old]--
	}
	d[now]++
}

// Changes is the non-zero entries in key order.
func (d RollupDelta) Changes() []RollupKey {
	keys := make([]RollupKey, 0, len(d))
	for k, n := range d {
		if n != 0 {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, RollupKey.Compare)
	return keys
}

// rollupDims are the dimensions the rollup can group by.
var rollupDims = []Dimension{DimMonth, DimDay, DimProvince, DimInsurer, DimServiceType, DimStatus}

// RollupServes reports whether the daily rollup answers the requests
// report q: every dimension is in it and the range is whole UTC days.
func RollupServes(q Query) bool {
	for _, d := range q.GroupBy {
		if !slices.Contains(rollupDims, d) {
			return false
		}
	}
	day := func(t time.Time) bool { return t.Equal(t.UTC().Truncate(24 * time.Hour)) }
	return day(q.From) && day(q.To)
}
