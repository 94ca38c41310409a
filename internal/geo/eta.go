package geo

import (
	"context"
	"errors"
	"fmt"
	"math"
)

const degToRad = math.Pi / 180

// Point is a position in degrees (WGS 84).
type Point struct {
	Lat float64 `json:"lat"`
	Lng float64 `json:"lng"`
}

// Estimator estimates driving times. Matrix is the one operation because
// that is what routing engines answer cheaply (one table call for many
// pairs) and what batch matching needs; a single estimate is a 1x1 matrix.
//
// Matrix writes into dst (len(from)*len(to), row-major: dst[i*len(to)+j] is
// from[i] to to[j]) the estimated seconds, so that callers can reuse dst.
// Implementations must be safe for concurrent use.
type Estimator interface {
	Matrix(ctx context.Context, from, to []Point, dst []float64) error
}

// RoadETA estimates a drive as the great-circle distance stretched by a
// road factor (roads are not straight) at an average speed. It is the
// embedded default; a routing engine can replace it behind Estimator.
type RoadETA struct {
	// Factor multiplies the great-circle distance; İstanbul's road network
	// averages about 1.3-1.4.
	Factor float64
	// SpeedKmh is the average speed of a service vehicle in traffic.
	SpeedKmh float64
}

// DefaultRoadETA is the estimate used when nothing is configured.
var DefaultRoadETA = RoadETA{Factor: 1.35, SpeedKmh: 35}

// Validate checks that the estimate can be computed.
func (r RoadETA) Validate() error {
	if r.Factor < 1 || r.Factor > 5 {
		return errors.New("eta road factor must be between 1 and 5")
	}
	if r.SpeedKmh <= 0 || r.SpeedKmh > 200 {
		return errors.New("eta speed must be between 0 and 200 km/h")
	}
	return nil
}

// Seconds is the estimate for a straight-line distance.
func (r RoadETA) Seconds(distanceKm float64) float64 {
	return distanceKm * r.Factor / r.SpeedKmh * 3600
}

// Matrix implements Estimator. It is the haversine of DistanceKm with the
// cosines of the destinations computed once per call rather than once per
// pair (the one allocation), which halves the cost of a 500 x 300 matrix.
func (r RoadETA) Matrix(_ context.Context, from, to []Point, dst []float64) error {
	if len(dst) < len(from)*len(to) {
		return fmt.Errorf("eta matrix: dst holds %d, need %d", len(dst), len(from)*len(to))
	}
	k := r.Factor / r.SpeedKmh * 3600 * 2 * earthRadiusKm
	cosTo := make([]float64, len(to))
	for j, b := range to {
		cosTo[j] = math.Cos(b.Lat * degToRad)
	}
	for i, a := range from {
		row := dst[i*len(to) : (i+1)*len(to)]
		cosA := math.Cos(a.Lat * degToRad)
		for j, b := range to {
			sLat := math.Sin((b.Lat - a.Lat) * degToRad / 2)
			sLng := math.Sin((b.Lng - a.Lng) * degToRad / 2)
			h := sLat*sLat + cosA*cosTo[j]*sLng*sLng
			row[j] = k * math.Asin(math.Min(1, math.Sqrt(h)))
		}
	}
	return nil
}
