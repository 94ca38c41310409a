package matching_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/yolda/yolda/internal/geo"
	"github.com/yolda/yolda/internal/matching"
)

// BenchmarkPeak matches a simulated İstanbul peak (500 waiting requests,
// 300 free drivers, and the balanced 300 x 300 case) with both
// algorithms. ns/op is the decision time of the matching alone; the
// metrics are the quality: mean and p90 ETA in seconds over matched
// requests, and how many were matched.
//
//	go test -run '^$' -bench Peak -benchtime 20x ./internal/matching
func BenchmarkPeak(b *testing.B) {
	for _, size := range []struct{ jobs, drivers int }{{500, 300}, {300, 300}} {
		p := matching.NewPeak(1, size.jobs, size.drivers)
		var m matching.Matcher
		var c matching.Costs
		if err := m.BuildCosts(context.Background(), geo.DefaultRoadETA, p.Drivers, p.Jobs, 3600, &c); err != nil {
			b.Fatal(err)
		}
		name := fmt.Sprintf("%dx%d", size.jobs, size.drivers)
		b.Run(name+"/costs", func(b *testing.B) {
			for b.Loop() {
				if err := m.BuildCosts(context.Background(), geo.DefaultRoadETA, p.Drivers, p.Jobs, 3600, &c); err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, alg := range []struct {
			name string
			run  func(*matching.Costs, []matching.Pair) []matching.Pair
		}{{"greedy", m.Greedy}, {"batch", m.Optimal}} {
			b.Run(name+"/"+alg.name, func(b *testing.B) {
				var pairs []matching.Pair
				for b.Loop() {
					pairs = alg.run(&c, pairs[:0])
				}
				s := matching.Summarise(pairs)
				b.ReportMetric(s.MeanSeconds, "mean_eta_s")
				b.ReportMetric(s.P90Seconds, "p90_eta_s")
				b.ReportMetric(float64(s.Matched), "matched")
			})
		}
	}
}
