package memory_test

import (
	"testing"

	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/geo/geotest"
	"github.com/yolda/yolda/internal/geo/memory"
)

// go test -run '^$' -bench Index ./internal/geo/memory
func BenchmarkIndex(b *testing.B) {
	geotest.Bench(b, func(b *testing.B) fleet.Index { return memory.New(memory.Options{}) }, []int{1000, 10000, 100000})
}
