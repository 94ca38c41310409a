package matching

import (
	"math"
	"math/rand/v2"
	"slices"

	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/geo"
	"github.com/yolda/yolda/internal/intake"
)

// Peak is a simulated rush (a bayram evening in İstanbul): requests
// clustered around motorway hot spots over a 50 x 65 km area, drivers
// spread over the city, half of them tow trucks.
type Peak struct {
	Jobs    []Job
	Drivers []Driver
}

// istanbul bounds the simulated area: from Avcılar to Kartal, from the
// Marmara shore to the northern motorway.
var istanbul = struct{ minLat, maxLat, minLng, maxLng float64 }{40.85, 41.30, 28.60, 29.38}

// hotSpots are where breakdowns pile up at a peak (motorway junctions and
// bridges).
var hotSpots = []geo.Point{
	{Lat: 41.0686, Lng: 29.0133}, // Zincirlikuyu
	{Lat: 41.0910, Lng: 29.0609}, // 15 Temmuz bridge
	{Lat: 41.0183, Lng: 28.8831}, // Bayrampaşa (O-1/E-5)
	{Lat: 40.9927, Lng: 28.7100}, // Avcılar
	{Lat: 41.0090, Lng: 29.1200}, // Kozyatağı
	{Lat: 40.9100, Lng: 29.1900}, // Kartal
	{Lat: 41.1150, Lng: 28.8700}, // Mahmutbey
	{Lat: 41.0400, Lng: 28.9450}, // Haliç bridge
}

// NewPeak builds a reproducible peak of jobs and drivers from seed.
func NewPeak(seed uint64, jobs, drivers int) Peak {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	uniform := func() geo.Point {
		return geo.Point{
			Lat: istanbul.minLat + rng.Float64()*(istanbul.maxLat-istanbul.minLat),
			Lng: istanbul.minLng + rng.Float64()*(istanbul.maxLng-istanbul.minLng),
		}
	}
	near := func(c geo.Point, sigmaKm float64) geo.Point {
		return geo.Point{
			Lat: c.Lat + rng.NormFloat64()*sigmaKm/111.195,
			Lng: c.Lng + rng.NormFloat64()*sigmaKm/(111.195*math.Cos(c.Lat*math.Pi/180)),
		}
	}
	services := []intake.ServiceType{intake.Tow, intake.Tow, intake.Tow, intake.JumpStart, intake.FlatTire, intake.FuelDelivery, intake.Lockout, intake.Winch}
	var p Peak
	for range jobs {
		at := uniform()
		if rng.IntN(10) < 7 {
			at = near(hotSpots[rng.IntN(len(hotSpots))], 3)
		}
		p.Jobs = append(p.Jobs, Job{At: at, Need: fleet.SkillOf(services[rng.IntN(len(services))])})
	}
	all := slices.Clone(intake.ServiceTypes)
	for i := range drivers {
		kind := fleet.ServiceVan
		if i%2 == 0 {
			kind = fleet.TowTruck
		}
		at := uniform()
		if rng.IntN(10) < 3 {
			at = near(hotSpots[rng.IntN(len(hotSpots))], 5)
		}
		p.Drivers = append(p.Drivers, Driver{At: at, Skills: fleet.SkillsOf(kind, all)})
	}
	return p
}

// Stats summarises the pairs of a matching.
type Stats struct {
	Matched     int
	MeanSeconds float64
	P90Seconds  float64
	Total       float64
}

// Summarise computes Stats over pairs.
func Summarise(pairs []Pair) Stats {
	s := Stats{Matched: len(pairs)}
	if len(pairs) == 0 {
		return s
	}
	costs := make([]float64, len(pairs))
	for i, p := range pairs {
		costs[i] = p.Cost
		s.Total += p.Cost
	}
	slices.Sort(costs)
	s.MeanSeconds = s.Total / float64(len(pairs))
	s.P90Seconds = costs[int(math.Ceil(0.9*float64(len(costs))))-1]
	return s
}
