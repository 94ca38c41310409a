package memory_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/cache"
	"github.com/yolda/yolda/internal/cache/cachetest"
	"github.com/yolda/yolda/internal/cache/memory"
)

func TestConformance(t *testing.T) {
	cachetest.Run(t, func(t *testing.T) (cache.Cache, func(time.Duration)) {
		var now atomic.Int64
		now.Store(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC).UnixNano())
		c := memory.New(0, func() time.Time { return time.Unix(0, now.Load()) })
		return c, func(d time.Duration) { now.Add(int64(d)) }
	})
}

// The cache stays within its bound, keeping the newest entry.
func TestBounded(t *testing.T) {
	c := memory.New(100, nil)
	for i := range 1000 {
		c.Fill(context.Background(), fmt.Sprint(i), cache.Entry{Value: []byte("x"), Version: 1}, time.Minute)
	}
	if _, ok, _ := c.Get(context.Background(), "999"); !ok {
		t.Error("the newest entry was dropped")
	}
	n := 0
	for i := range 1000 {
		if _, ok, _ := c.Get(context.Background(), fmt.Sprint(i)); ok {
			n++
		}
	}
	if n > 100 {
		t.Errorf("%d entries held, bound 100", n)
	}
}
