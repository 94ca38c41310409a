package geo

import (
	"math"
	"testing"
)

func TestDistanceKm(t *testing.T) {
	cases := []struct {
		name                   string
		lat1, lng1, lat2, lng2 float64
		want, tolerance        float64
	}{
		{"same point", 41.0082, 28.9784, 41.0082, 28.9784, 0, 1e-9},
		{"İstanbul Fatih to Ankara Kızılay", 41.0082, 28.9784, 39.9208, 32.8541, 350, 5},
		{"one degree of latitude", 0, 0, 1, 0, 111.2, 0.2},
		{"antipodes", 0, 0, 0, 180, math.Pi * earthRadiusKm, 1e-6},
	}
	for _, c := range cases {
		got := DistanceKm(c.lat1, c.lng1, c.lat2, c.lng2)
		if math.Abs(got-c.want) > c.tolerance {
			t.Errorf("%s: %.3f km, want %.1f ± %.1f", c.name, got, c.want, c.tolerance)
		}
		if back := DistanceKm(c.lat2, c.lng2, c.lat1, c.lng1); math.Abs(back-got) > 1e-9 {
			t.Errorf("%s: not symmetric (%.6f vs %.6f)", c.name, got, back)
		}
	}
}

func TestRoadETAMatrixAgreesWithDistance(t *testing.T) {
	eta := RoadETA{Factor: 1.4, SpeedKmh: 40}
	from := []Point{{41.0082, 28.9784}, {40.99, 29.03}, {41.1, 28.7}}
	to := []Point{{41.05, 29.01}, {39.9208, 32.8541}}
	dst := make([]float64, len(from)*len(to))
	if err := eta.Matrix(t.Context(), from, to, dst); err != nil {
		t.Fatal(err)
	}
	for i, a := range from {
		for j, b := range to {
			want := DistanceKm(a.Lat, a.Lng, b.Lat, b.Lng) * 1.4 / 40 * 3600
			if got := dst[i*len(to)+j]; math.Abs(got-want) > 1e-6*want {
				t.Errorf("%v -> %v: %.3f s, want %.3f", a, b, got, want)
			}
		}
	}
	if err := eta.Matrix(t.Context(), from, to, dst[:5]); err == nil {
		t.Error("a short dst was accepted")
	}
	if (RoadETA{Factor: 0.5, SpeedKmh: 40}).Validate() == nil || (RoadETA{Factor: 1.3}).Validate() == nil {
		t.Error("Validate accepts a factor below 1 or no speed")
	}
}
