package memory_test

import (
	"testing"

	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/geo/geotest"
	"github.com/yolda/yolda/internal/geo/memory"
)

func TestConformance(t *testing.T) {
	geotest.Run(t, func(t *testing.T) fleet.Index { return memory.New(memory.Options{}) })
}

// Coarse and fine grids must answer the same: the ring search's stopping
// rule cannot depend on the cell size being right for the query.
func TestConformanceOtherCellSizes(t *testing.T) {
	for _, deg := range []float64{0.001, 0.2} {
		geotest.Run(t, func(t *testing.T) fleet.Index { return memory.New(memory.Options{CellDeg: deg}) })
	}
}
