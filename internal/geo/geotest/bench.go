package geotest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/geo"
)

// Fleet is a reproducible fleet spread over İstanbul (45 x 65 km): 70 %
// online, 30 % of those busy, half tow trucks.
func Fleet(seed uint64, n int, at time.Time) ([]fleet.Fix, []fleet.State) {
	rng := rand.New(rand.NewPCG(seed, 99))
	fixes := make([]fleet.Fix, n)
	states := make([]fleet.State, n)
	for i := range n {
		fixes[i] = fleet.Fix{DriverID: fmt.Sprintf("drv%06d", i), Lat: 40.85 + rng.Float64()*0.40, Lng: 28.60 + rng.Float64()*0.78, At: at}
		skills := jump
		if i%2 == 0 {
			skills |= tow
		}
		states[i] = fleet.State{Online: rng.IntN(10) < 7, Busy: rng.IntN(10) < 3, Skills: skills, Version: 1}
	}
	return fixes, states
}

// Load puts the fleet into x, in batches.
func Load(tb testing.TB, x fleet.Index, fixes []fleet.Fix, states []fleet.State) {
	ctx := context.Background()
	for i := range fixes {
		if err := x.Update(ctx, fixes[i], states[i]); err != nil {
			tb.Fatal(err)
		}
	}
}

// Bench measures a backend: the cost of a dispatch candidate search (the
// 10 nearest online, free tow trucks within 10 km, fresh) as the fleet
// grows, and the rate of position updates, one at a time from one
// goroutine, from many goroutines, and in batches of 100.
//
//	go test -run '^$' -bench . ./internal/geo/memory ./internal/geo/redis
func Bench(b *testing.B, open func(b *testing.B) fleet.Index, sizes []int) {
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	for _, n := range sizes {
		x := open(b)
		fixes, states := Fleet(1, n, at)
		Load(b, x, fixes, states)
		rng := rand.New(rand.NewPCG(2, 3))
		b.Run(fmt.Sprintf("Nearby/drivers=%d", n), func(b *testing.B) {
			ctx := context.Background()
			found := 0
			for b.Loop() {
				q := fleet.Query{
					Center:   geo.Point{Lat: 40.9 + rng.Float64()*0.3, Lng: 28.7 + rng.Float64()*0.6},
					RadiusKm: 10, Limit: 10,
					Filter: fleet.Filter{Online: true, Free: true, Need: tow, FreshAfter: at.Add(-2 * time.Minute)},
				}
				got, err := x.Nearby(ctx, q)
				if err != nil {
					b.Fatal(err)
				}
				found += len(got)
			}
			b.ReportMetric(float64(found)/float64(b.N), "found/op")
		})
		b.Run(fmt.Sprintf("Move/drivers=%d", n), func(b *testing.B) {
			ctx := context.Background()
			i := 0
			for b.Loop() {
				f := fixes[i%n]
				f.At = at.Add(time.Duration(i) * time.Millisecond)
				f.Lat += 0.0001
				if _, err := x.Move(ctx, f); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
		})
		b.Run(fmt.Sprintf("MoveParallel/drivers=%d", n), func(b *testing.B) {
			ctx := context.Background()
			var seq atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(seq.Add(1))
					f := fixes[i%n]
					f.At = at.Add(time.Duration(i) * time.Millisecond)
					if _, err := x.Move(ctx, f); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
		})
		b.Run(fmt.Sprintf("MoveBatch100/drivers=%d", n), func(b *testing.B) {
			ctx := context.Background()
			batch := make([]fleet.Fix, 100)
			i := 0
			for b.Loop() {
				for j := range batch {
					batch[j] = fixes[(i+j)%n]
					batch[j].At = at.Add(time.Duration(i+j) * time.Millisecond)
				}
				i += len(batch)
				if _, err := x.Move(ctx, batch...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "updates/s")
		})
	}
}
