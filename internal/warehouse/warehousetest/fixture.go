package warehousetest

import (
	"math/rand/v2"
	"slices"
	"time"

	"github.com/yolda/yolda/internal/id"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
)

// Truth is what one fixture request really went through: the oracle the
// suite computes expected reports from, independently of the engines.
type Truth struct {
	ID                        string
	Created                   time.Time
	Province, District        string
	Insurer, Service, Vehicle string
	Status                    string
	AssignS, ArriveS          *float64
	Insurance                 string
	InsuranceS                *float64
	Calls                     []CallTruth
}

// CallTruth is one insurer call of a fixture request.
type CallTruth struct {
	At        time.Time
	LatencyMs float64
	Error     bool
}

// Fixture is a set of requests and the envelopes their life left on the
// EVENTS stream, in commit order.
type Fixture struct {
	Start, End time.Time
	Requests   []Truth
	Events     [][]byte
}

var (
	provinces = []struct {
		name      string
		districts []string
		lat, lng  float64
		weight    int
	}{
		{"İstanbul", []string{"Kadıköy", "Şişli", "Üsküdar"}, 41.01, 28.97, 6},
		{"Ankara", []string{"Çankaya", "Keçiören"}, 39.93, 32.86, 3},
		{"İzmir", []string{"Konak", "Bornova"}, 38.42, 27.14, 2},
		{"Bursa", []string{"Osmangazi"}, 40.19, 29.06, 1},
	}
	insurers = []string{"anadolu", "axa", "allianz"}
	vehicles = []string{"car", "light_commercial", "motorcycle"}
)

// NewFixture makes n requests created from start on, deterministic for a
// seed. Every request gets an insurance call and answer; most are
// assigned, arrive and complete, some are cancelled or unfulfilled.
func NewFixture(seed uint64, n int, start time.Time) Fixture {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	f := Fixture{Start: start}
	type stamped struct {
		at  time.Time
		msg []byte
	}
	var all []stamped
	add := func(subject, typ string, at time.Time, req string, actor outbox.Actor, data any) {
		m, err := outbox.New(subject, typ, at, req, actor, data)
		if err != nil {
			panic(err)
		}
		all = append(all, stamped{at, m.Payload})
	}
	ms := func(d float64) time.Duration {
		return time.Duration(d * float64(time.Second)).Truncate(time.Millisecond)
	}
	customer := outbox.Actor{ID: "usr_customer", Role: identity.Customer}
	for i := range n {
		created := start.Add(time.Duration(i) * 7 * time.Minute).Add(time.Duration(rng.IntN(300)) * time.Second).Truncate(time.Microsecond)
		p := pickProvince(rng)
		t := Truth{
			ID: id.New("req", created), Created: created, Province: p.name, District: p.districts[rng.IntN(len(p.districts))],
			Insurer: insurers[rng.IntN(len(insurers))], Service: string(intake.ServiceTypes[rng.IntN(len(intake.ServiceTypes))]),
			Vehicle: vehicles[rng.IntN(len(vehicles))], Status: string(intake.StatusDispatching), Insurance: "pending",
		}
		req := intake.Request{
			ID: t.ID, Status: intake.StatusDispatching, ServiceType: intake.ServiceType(t.Service),
			Location: intake.Location{Lat: p.lat + rng.Float64()/10, Lng: p.lng + rng.Float64()/10, Address: "Bağdat Cd. No 5",
				Province: t.Province, District: t.District},
			Vehicle:   intake.Vehicle{Plate: "34 ABC 123", Type: intake.VehicleType(t.Vehicle)},
			Policy:    intake.Policy{Insurer: t.Insurer, PolicyNumber: "POL-123456"},
			Contact:   intake.Contact{Name: "Ayşe Yılmaz", Phone: "+90 532 123 45 67"},
			Insurance: intake.Insurance{Status: intake.InsurancePending},
			CreatedAt: created, UpdatedAt: created, OwnerID: "usr_customer",
		}
		add("events.request.created", outbox.EventRequestCreated, created, t.ID, customer, intake.CreatedEvent{Request: req, OwnerID: req.OwnerID})

		// The insurer: one call, sometimes a failed one first.
		at := created.Add(ms(0.2 + rng.Float64()))
		if rng.IntN(5) == 0 {
			c := CallTruth{At: at, LatencyMs: float64(2000 + rng.IntN(100)), Error: true}
			t.Calls = append(t.Calls, c)
			add("events.insurance.call", "insurance.call", at, t.ID, outbox.SystemActor,
				map[string]any{"insurer": t.Insurer, "at": at, "latency_ms": c.LatencyMs, "outcome": "error", "error_kind": "timeout", "attempts": 3})
			at = at.Add(ms(5 + rng.Float64()*5))
		}
		c := CallTruth{At: at, LatencyMs: float64(50 + rng.IntN(400))}
		t.Calls = append(t.Calls, c)
		verdict := []string{"approved", "approved", "approved", "approved", "rejected", "manual_review"}[rng.IntN(6)]
		outcome := "covered"
		if verdict != "approved" {
			outcome = "not_covered"
		}
		add("events.insurance.call", "insurance.call", at, t.ID, outbox.SystemActor,
			map[string]any{"insurer": t.Insurer, "at": at, "latency_ms": c.LatencyMs, "outcome": outcome, "attempts": 1})
		decided := at.Add(ms(c.LatencyMs / 1000))
		t.Insurance = verdict
		s := roundS(decided.Sub(created))
		t.InsuranceS = &s
		add("events.request.insurance_checked", intake.EventRequestInsuranceCheck, decided, t.ID, outbox.SystemActor,
			intake.InsuranceChecked{Status: intake.InsuranceStatus(verdict), At: decided, OwnerID: req.OwnerID})

		move := func(from, to string, at time.Time, reason string, actor outbox.Actor) {
			add("events.request.status_changed", outbox.EventRequestStatusChanged, at, t.ID, actor,
				intake.StatusChange{From: intake.Status(from), To: intake.Status(to), At: at, Reason: reason, OwnerID: req.OwnerID})
			t.Status = to
		}
		if verdict == "rejected" {
			move("dispatching", "rejected", decided, "policy expired", outbox.SystemActor)
			f.Requests = append(f.Requests, t)
			continue
		}
		switch r := rng.IntN(20); {
		case r == 0:
			move("dispatching", "unfulfilled", created.Add(10*time.Minute), "no driver within 50 km", outbox.SystemActor)
		case r == 1:
			move("dispatching", "cancelled", created.Add(ms(60+rng.Float64()*600)), "waited too long, call 0532 123 45 67", customer)
		default:
			assigned := created.Add(ms(20 + rng.Float64()*400))
			move("dispatching", "assigned", assigned, "", outbox.SystemActor)
			a := roundS(assigned.Sub(created))
			t.AssignS = &a
			move("assigned", "en_route", assigned.Add(time.Minute), "", outbox.SystemActor)
			if r == 2 {
				move("en_route", "cancelled", assigned.Add(5*time.Minute), "found another way", customer)
				break
			}
			arrived := assigned.Add(ms(600 + rng.Float64()*3600))
			move("en_route", "arrived", arrived, "", outbox.SystemActor)
			v := roundS(arrived.Sub(created))
			t.ArriveS = &v
			move("arrived", "in_service", arrived.Add(2*time.Minute), "", outbox.SystemActor)
			move("in_service", "completed", arrived.Add(30*time.Minute), "", outbox.SystemActor)
		}
		f.Requests = append(f.Requests, t)
	}
	// Commit order is time order.
	slices.SortStableFunc(all, func(a, b stamped) int { return a.at.Compare(b.at) })
	for _, s := range all {
		f.Events = append(f.Events, s.msg)
	}
	f.End = start.Add(time.Duration(n)*7*time.Minute + 24*time.Hour)
	return f
}

func roundS(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }

func pickProvince(rng *rand.Rand) (p struct {
	name      string
	districts []string
	lat, lng  float64
	weight    int
}) {
	total := 0
	for _, p := range provinces {
		total += p.weight
	}
	n := rng.IntN(total)
	for _, p := range provinces {
		if n < p.weight {
			return p
		}
		n -= p.weight
	}
	return provinces[0]
}
