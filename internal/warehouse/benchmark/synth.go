// Package benchmark measures the warehouse: it generates synthetic request
// facts (provinces, districts, services, vehicles and insurers drawn as
// the intake load generator draws them, so İstanbul, Ankara and İzmir are
// heavy; hours following a day's traffic), loads them into each engine,
// times every report cold and warm, and runs the same reports as plain
// SQL on the operational PostgreSQL schema holding the same requests.
// `yolda bench warehouse` runs it; docs/benchmarks.md has its numbers.
package benchmark

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/yolda/yolda/internal/id"
	"github.com/yolda/yolda/internal/loadgen"
	"github.com/yolda/yolda/internal/warehouse"
)

// Year is the range the synthetic requests are created in.
var (
	YearStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	YearEnd   = YearStart.AddDate(1, 0, 0)
)

// Insurers are the synthetic facts' insurers, heaviest first.
var Insurers = []string{"anadolu", "axa", "allianz", "sompo", "hdi", "mapfre", "ray", "turkiye"}

// hourWeights is roadside demand by hour of day in Turkey (UTC+3): low at
// night, peaks at the commutes.
var hourWeights = [24]int{2, 1, 1, 1, 1, 2, 4, 7, 9, 8, 7, 7, 7, 7, 7, 8, 9, 10, 10, 8, 6, 5, 4, 3}

// Synth makes synthetic request facts, deterministic for a seed.
type Synth struct {
	rng     *rand.Rand
	hourCum [24]int
}

// NewSynth returns a generator.
func NewSynth(seed uint64) *Synth {
	s := &Synth{rng: rand.New(rand.NewPCG(seed, seed*31+7))}
	sum := 0
	for h, w := range hourWeights {
		sum += w
		s.hourCum[h] = sum
	}
	return s
}

// Next makes one fact.
func (s *Synth) Next() warehouse.RequestFact {
	r := s.rng
	sub := loadgen.RandomSubmission(r, Insurers)
	day := YearStart.AddDate(0, 0, r.IntN(365))
	n := r.IntN(s.hourCum[23])
	hour := 0
	for s.hourCum[hour] <= n {
		hour++
	}
	// hourWeights are Turkey's clock; facts are UTC.
	created := day.Add(time.Duration(hour-3)*time.Hour + time.Duration(r.IntN(3_600_000))*time.Millisecond)
	if created.Before(YearStart) {
		created = created.Add(24 * time.Hour)
	}
	f := warehouse.RequestFact{
		RequestID: id.New("req", created), CreatedAt: created, HasCreated: true,
		Province: sub.Location.Province, District: sub.Location.District,
		Cell:        warehouse.Cell(sub.Location.Lat, sub.Location.Lng),
		ServiceType: sub.ServiceType, VehicleType: sub.Vehicle.Type, Insurer: sub.Policy.Insurer,
		Events: 2, LastEventAt: created,
	}
	ins := created.Add(time.Duration(200+r.IntN(3000)) * time.Millisecond)
	f.InsuranceAt = &ins
	f.InsuranceLatency = secs(ins.Sub(created))
	switch x := r.IntN(100); {
	case x < 80:
		f.InsuranceStatus = "approved"
	case x < 88:
		f.InsuranceStatus = "waived"
	case x < 95:
		f.InsuranceStatus = "rejected"
	default:
		f.InsuranceStatus = "manual_review"
	}
	if f.InsuranceStatus == "rejected" {
		f.Status, f.StatusAt = "rejected", ins
		return f
	}
	x := r.IntN(100)
	switch {
	case x < 3:
		f.Status, f.StatusAt = "unfulfilled", created.Add(10*time.Minute)
		f.UnfulfilledReason = "no driver available"
		return f
	case x < 8:
		at := created.Add(time.Duration(60+r.IntN(900)) * time.Second)
		f.Status, f.StatusAt, f.CancelledAt, f.CancelReason, f.CancelledBy = "cancelled", at, &at, "waited too long", "customer"
		return f
	}
	// Minutes to assign and to arrive: log-normal, about 2 and 35 minutes
	// at the median, longer outside the big cities.
	spread := 1.0
	if f.Province != "İstanbul" && f.Province != "Ankara" && f.Province != "İzmir" {
		spread = 1.3
	}
	assigned := created.Add(time.Duration(math.Exp(r.NormFloat64()*0.6+math.Log(120))*spread) * time.Second).Truncate(time.Millisecond)
	arrived := assigned.Add(time.Duration(math.Exp(r.NormFloat64()*0.45+math.Log(33*60))*spread) * time.Second).Truncate(time.Millisecond)
	completed := arrived.Add(time.Duration(15+r.IntN(60)) * time.Minute)
	eta := arrived.Sub(assigned).Seconds() * (0.8 + r.Float64()*0.4)
	km := math.Round(arrived.Sub(assigned).Hours()*40*10) / 10
	f.AssignedAt, f.ArrivedAt, f.CompletedAt = &assigned, &arrived, &completed
	f.TimeToAssign, f.TimeToArrive = secs(assigned.Sub(created)), secs(arrived.Sub(created))
	f.ETASeconds, f.DistanceKm = &eta, &km
	f.Status, f.StatusAt, f.Events, f.LastEventAt = "completed", completed, 7, completed
	if x < 10 { // still on the road when the year closed
		f.Status, f.StatusAt, f.CompletedAt, f.Events = "arrived", arrived, nil, 5
	}
	return f
}

func secs(d time.Duration) *float64 {
	s := float64(d.Milliseconds()) / 1000
	return &s
}
