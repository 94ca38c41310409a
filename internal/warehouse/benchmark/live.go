package benchmark

import (
	"math/rand/v2"
	"time"

	"github.com/yolda/yolda/internal/id"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
)

// Live makes events as the platform would emit them now: requests are
// created and walk their life (insurance answer, assigned, en route,
// arrived, in service, completed), interleaved, each event stamped with
// the time it is made.
type Live struct {
	rng    *rand.Rand
	active []*liveRequest
}

type liveRequest struct {
	id   string
	step int
}

var lifeSteps = []intake.Status{intake.StatusAssigned, intake.StatusEnRoute, intake.StatusArrived, intake.StatusInService, intake.StatusCompleted}

// NewLive returns a generator.
func NewLive(seed uint64) *Live { return &Live{rng: rand.New(rand.NewPCG(seed, 3))} }

// Next makes one event, as an outbox message.
func (l *Live) Next() outbox.Message {
	now := time.Now().UTC()
	if len(l.active) < 200 || l.rng.IntN(7) == 0 {
		req := id.New("req", now)
		l.active = append(l.active, &liveRequest{id: req})
		r := intake.Request{ID: req, Status: intake.StatusDispatching, ServiceType: intake.Tow, CreatedAt: now, UpdatedAt: now,
			Location: intake.Location{Lat: 41.01, Lng: 28.97, Province: "İstanbul", District: "Kadıköy"},
			Vehicle:  intake.Vehicle{Type: "car"}, Policy: intake.Policy{Insurer: Insurers[l.rng.IntN(len(Insurers))]},
			Insurance: intake.Insurance{Status: intake.InsurancePending}}
		m, _ := outbox.New(outbox.EventSubject(outbox.EventRequestCreated), outbox.EventRequestCreated, now, req,
			outbox.Actor{Role: identity.Customer}, intake.CreatedEvent{Request: r})
		return m
	}
	i := l.rng.IntN(len(l.active))
	r := l.active[i]
	var m outbox.Message
	if r.step == 0 {
		m, _ = outbox.New(outbox.EventSubject(intake.EventRequestInsuranceCheck), intake.EventRequestInsuranceCheck, now, r.id,
			outbox.SystemActor, intake.InsuranceChecked{Status: intake.InsuranceApproved, At: now})
	} else {
		from := intake.StatusDispatching
		if r.step > 1 {
			from = lifeSteps[r.step-2]
		}
		m, _ = outbox.New(outbox.EventSubject(outbox.EventRequestStatusChanged), outbox.EventRequestStatusChanged, now, r.id,
			outbox.SystemActor, intake.StatusChange{From: from, To: lifeSteps[r.step-1], At: now})
	}
	r.step++
	if r.step > len(lifeSteps) {
		l.active = append(l.active[:i], l.active[i+1:]...)
	}
	return m
}

// Fork returns a generator that goes on from l's requests where they are,
// with its own randomness: what happens next in a warehouse that already
// holds what l made.
func (l *Live) Fork(seed uint64) *Live {
	f := NewLive(seed)
	for _, r := range l.active {
		f.active = append(f.active, &liveRequest{id: r.id, step: r.step})
	}
	return f
}
