package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/yolda/yolda/internal/geo"
	"github.com/yolda/yolda/internal/intake"
)

// Approach is where a driver is and how long it needs to reach a point:
// what a customer waiting for the truck wants to know.
type Approach struct {
	Position intake.Position
	ETA      time.Duration
}

// Toward returns the driver's last known position and the estimated time
// from there to at; ok is false when the index has no fix of the driver.
func (s *Service) Toward(ctx context.Context, driverID string, at geo.Point) (a Approach, ok bool, err error) {
	entries, err := s.index.Lookup(ctx, []string{driverID})
	if err != nil {
		return Approach{}, false, fmt.Errorf("look up driver: %w", err)
	}
	if len(entries) == 0 || !entries[0].HasFix {
		return Approach{}, false, nil
	}
	fx := entries[0].Fix
	secs := []float64{0}
	if err := s.opts.ETA.Matrix(ctx, []geo.Point{fx.Point()}, []geo.Point{at}, secs); err != nil {
		return Approach{}, false, fmt.Errorf("estimate arrival: %w", err)
	}
	return Approach{
		Position: intake.Position{Lat: fx.Lat, Lng: fx.Lng, At: fx.At},
		ETA:      time.Duration(secs[0] * float64(time.Second)),
	}, true, nil
}
