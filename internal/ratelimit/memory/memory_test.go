package memory_test

import (
	"context"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/ratelimit"
	"github.com/yolda/yolda/internal/ratelimit/memory"
	"github.com/yolda/yolda/internal/ratelimit/ratelimittest"
)

func TestConformance(t *testing.T) {
	ratelimittest.Run(t, func(t *testing.T, now func() time.Time) ratelimittest.Limiter { return memory.New(now) })
}

// Whole budgets are forgotten, so one-off clients do not grow the map.
func TestForgetsWholeBudgets(t *testing.T) {
	clk := ratelimittest.NewClock()
	l := memory.New(clk.Now)
	for i := range 100 {
		l.Allow(context.Background(), ratelimit.Check{Key: string(rune('a'+i%26)) + string(rune('a'+i/26)), Limit: ratelimit.Limit{Rate: 10, Burst: 1}})
	}
	if l.Len() != 100 {
		t.Fatalf("%d keys remembered, want 100", l.Len())
	}
	clk.Advance(2 * time.Minute)
	l.Allow(context.Background(), ratelimit.Check{Key: "new", Limit: ratelimit.Limit{Rate: 10, Burst: 1}})
	if l.Len() != 1 {
		t.Errorf("%d keys remembered after every budget refilled, want 1", l.Len())
	}
}

// go test -run '^$' -bench Allow ./internal/ratelimit/...
func BenchmarkAllow(b *testing.B) { ratelimittest.Bench(b, memory.New(nil)) }
