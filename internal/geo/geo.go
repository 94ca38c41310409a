// Package geo holds the small amount of geometry Yolda needs: distances on
// the Earth's surface. It is not a spatial index (see the fleet's position
// index for that).
package geo

import "math"

// earthRadiusKm is the mean radius used by the haversine formula; the
// error against the ellipsoid is under 0.5 %, far below what a tow route's
// detours add.
const earthRadiusKm = 6371.0088

// DistanceKm is the great-circle distance between two points given in
// degrees.
func DistanceKm(lat1, lng1, lat2, lng2 float64) float64 {
	toRad := func(d float64) float64 { return d * math.Pi / 180 }
	dLat := toRad(lat2 - lat1)
	dLng := toRad(lng2 - lng1)
	a := math.Sin(dLat/2)*math.Sin(dLat/2) +
		math.Cos(toRad(lat1))*math.Cos(toRad(lat2))*math.Sin(dLng/2)*math.Sin(dLng/2)
	return 2 * earthRadiusKm * math.Asin(math.Min(1, math.Sqrt(a)))
}
