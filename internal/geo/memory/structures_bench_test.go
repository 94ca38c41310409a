package memory_test

// Which structure should the in-process index use? This benchmark runs the
// dispatch workload (10 nearest free, online, capable, fresh drivers within
// 10 km, and position updates) over three structures holding the same
// fleet: the grid of this package (at three cell sizes), an R-tree
// (github.com/tidwall/rtree, the one Tile38 uses, with its best-first kNN
// search over a local km projection), and a plain scan. docs/benchmarks.md
// records the numbers.
//
//	go test -run '^$' -bench Structures ./internal/geo/memory

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/tidwall/rtree"

	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/geo"
	"github.com/yolda/yolda/internal/geo/geotest"
	"github.com/yolda/yolda/internal/geo/memory"
)

// structure is the part of fleet.Index the comparison needs.
type structure interface {
	Update(ctx context.Context, f fleet.Fix, st fleet.State) error
	Move(ctx context.Context, fixes ...fleet.Fix) ([]string, error)
	Nearby(ctx context.Context, q fleet.Query) ([]fleet.Candidate, error)
}

type entry struct {
	fix fleet.Fix
	st  fleet.State
}

// kmPerDeg and cosRef project İstanbul onto a plane in km, exact enough
// there for the R-tree's box distances.
const kmPerDeg = 111.195

var cosRef = math.Cos(41 * math.Pi / 180)

func project(lat, lng float64) [2]float64 { return [2]float64{lng * kmPerDeg * cosRef, lat * kmPerDeg} }

type rtreeIndex struct {
	tr   rtree.RTreeG[int32]
	ids  map[string]int32
	ents []entry
}

func newRTree() *rtreeIndex { return &rtreeIndex{ids: map[string]int32{}} }

func (x *rtreeIndex) Update(_ context.Context, f fleet.Fix, st fleet.State) error {
	i, ok := x.ids[f.DriverID]
	if !ok {
		i = int32(len(x.ents))
		x.ids[f.DriverID] = i
		x.ents = append(x.ents, entry{fix: f, st: st})
		p := project(f.Lat, f.Lng)
		x.tr.Insert(p, p, i)
		return nil
	}
	x.ents[i].st = st
	_, err := x.Move(context.Background(), f)
	return err
}

func (x *rtreeIndex) Move(_ context.Context, fixes ...fleet.Fix) ([]string, error) {
	for _, f := range fixes {
		i := x.ids[f.DriverID]
		old := project(x.ents[i].fix.Lat, x.ents[i].fix.Lng)
		p := project(f.Lat, f.Lng)
		x.tr.Replace(old, old, i, p, p, i)
		x.ents[i].fix = f
	}
	return nil, nil
}

func (x *rtreeIndex) Nearby(_ context.Context, q fleet.Query) ([]fleet.Candidate, error) {
	c := project(q.Center.Lat, q.Center.Lng)
	var out []fleet.Candidate
	x.tr.Nearby(rtree.BoxDist[float64, int32](c, c, nil), func(_, _ [2]float64, i int32, d float64) bool {
		if d > q.RadiusKm*q.RadiusKm*1.01 { // BoxDist is squared
			return false
		}
		e := &x.ents[i]
		if q.Admits(e.st, e.fix.At) && !q.Excluded(e.fix.DriverID) {
			km := geo.DistanceKm(q.Center.Lat, q.Center.Lng, e.fix.Lat, e.fix.Lng)
			if km <= q.RadiusKm {
				out = append(out, fleet.Candidate{DriverID: e.fix.DriverID, Fix: e.fix, State: e.st, DistanceKm: km})
			}
		}
		return len(out) < q.Limit
	})
	return out, nil
}

type scanIndex struct {
	ids  map[string]int32
	ents []entry
}

func newScan() *scanIndex { return &scanIndex{ids: map[string]int32{}} }

func (x *scanIndex) Update(_ context.Context, f fleet.Fix, st fleet.State) error {
	i, ok := x.ids[f.DriverID]
	if !ok {
		i = int32(len(x.ents))
		x.ids[f.DriverID] = i
		x.ents = append(x.ents, entry{})
	}
	x.ents[i] = entry{fix: f, st: st}
	return nil
}

func (x *scanIndex) Move(_ context.Context, fixes ...fleet.Fix) ([]string, error) {
	for _, f := range fixes {
		x.ents[x.ids[f.DriverID]].fix = f
	}
	return nil, nil
}

func (x *scanIndex) Nearby(_ context.Context, q fleet.Query) ([]fleet.Candidate, error) {
	var out []fleet.Candidate
	for i := range x.ents {
		e := &x.ents[i]
		if !q.Admits(e.st, e.fix.At) {
			continue
		}
		km := geo.DistanceKm(q.Center.Lat, q.Center.Lng, e.fix.Lat, e.fix.Lng)
		if km <= q.RadiusKm && !q.Excluded(e.fix.DriverID) {
			out = append(out, fleet.Candidate{DriverID: e.fix.DriverID, Fix: e.fix, State: e.st, DistanceKm: km})
		}
	}
	slices.SortFunc(out, func(a, b fleet.Candidate) int { return int(math.Copysign(1, a.DistanceKm-b.DistanceKm)) })
	return out[:min(len(out), q.Limit)], nil
}

func BenchmarkStructures(b *testing.B) {
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	kinds := []struct {
		name string
		open func() structure
	}{
		{"grid0.0025", func() structure { return memory.New(memory.Options{CellDeg: 0.0025}) }},
		{"grid0.01", func() structure { return memory.New(memory.Options{CellDeg: 0.01}) }},
		{"grid0.04", func() structure { return memory.New(memory.Options{CellDeg: 0.04}) }},
		{"rtree", func() structure { return newRTree() }},
		{"scan", func() structure { return newScan() }},
	}
	for _, n := range []int{1000, 10000, 100000} {
		fixes, states := geotest.Fleet(1, n, at)
		for _, k := range kinds {
			x := k.open()
			ctx := context.Background()
			for i := range fixes {
				if err := x.Update(ctx, fixes[i], states[i]); err != nil {
					b.Fatal(err)
				}
			}
			rng := rand.New(rand.NewPCG(2, 3))
			b.Run(fmt.Sprintf("Nearby/drivers=%d/%s", n, k.name), func(b *testing.B) {
				for b.Loop() {
					q := fleet.Query{
						Center:   geo.Point{Lat: 40.9 + rng.Float64()*0.3, Lng: 28.7 + rng.Float64()*0.6},
						RadiusKm: 10, Limit: 10,
						Filter: fleet.Filter{Online: true, Free: true, Need: fleet.SkillOf("tow"), FreshAfter: at.Add(-time.Minute)},
					}
					if _, err := x.Nearby(ctx, q); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("Move/drivers=%d/%s", n, k.name), func(b *testing.B) {
				i := 0
				for b.Loop() {
					f := fixes[i%n]
					// A car at 50 km/h moves ~55 m between 4-second reports.
					f.Lat += (rng.Float64() - 0.5) * 0.001
					f.Lng += (rng.Float64() - 0.5) * 0.001
					f.At = at.Add(time.Duration(i) * time.Millisecond)
					fixes[i%n] = f
					if _, err := x.Move(ctx, f); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}

// The alternatives must answer what the grid answers, or the comparison
// means nothing.
func TestStructuresAgree(t *testing.T) {
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	fixes, states := geotest.Fleet(5, 3000, at)
	xs := []structure{memory.New(memory.Options{}), newRTree(), newScan()}
	ctx := context.Background()
	for _, x := range xs {
		for i := range fixes {
			if err := x.Update(ctx, fixes[i], states[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	rng := rand.New(rand.NewPCG(8, 9))
	for range 50 {
		q := fleet.Query{Center: geo.Point{Lat: 40.9 + rng.Float64()*0.3, Lng: 28.7 + rng.Float64()*0.6}, RadiusKm: 5, Limit: 10,
			Filter: fleet.Filter{Online: true, Free: true}}
		var want []string
		for i, x := range xs {
			got, err := x.Nearby(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			ids := make([]string, len(got))
			for j, c := range got {
				ids[j] = c.DriverID
			}
			if i == 0 {
				want = ids
			} else if !slices.Equal(ids, want) {
				t.Fatalf("structure %d answers %v, the grid %v", i, ids, want)
			}
		}
	}
}
