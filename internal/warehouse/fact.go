package warehouse

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/yolda/yolda/internal/id"
)

// RequestFact is one request as reports see it: its dimensions, where it
// ended, and how long each step took. It is a function of the request's
// events alone (Derive), whatever order they arrived in, so loading is
// ordering-tolerant and a rebuild reproduces it exactly.
type RequestFact struct {
	RequestID string
	// CreatedAt is the creation time the request id carries (millisecond
	// precision): known from any of its events, so a fact has its place in
	// time (and its month partition) before request.created arrives.
	CreatedAt time.Time
	// HasCreated tells whether request.created was seen; until then the
	// dimensions are empty.
	HasCreated bool

	Province, District, Cell string
	ServiceType, VehicleType string
	Insurer                  string
	DestProvince, DestCell   string

	Status   string
	StatusAt time.Time

	AssignedAt, ArrivedAt, CompletedAt, CancelledAt *time.Time
	// TimeToAssign and TimeToArrive are seconds from creation to the first
	// assignment and to the first arrival.
	TimeToAssign, TimeToArrive *float64
	DistanceKm                 *float64
	ETASeconds                 *float64
	TowDistanceKm              *float64

	InsuranceStatus   string
	InsuranceAt       *time.Time
	InsuranceLatency  *float64 // seconds from creation to the settled answer
	InsuranceFlags    string   // comma-separated
	CancelReason      string
	CancelledBy       string // actor role
	UnfulfilledReason string
	Events            int
	LastEventAt       time.Time
	Seq               int64
}

// Order sorts one request's events into the order they happened: by
// sequence when every event has one (the producer's version, immune to
// clock skew between writers), else by occurrence time; the event id breaks
// ties, so the order is total and the same everywhere.
func Order(evs []Event) {
	bySeq := true
	for _, e := range evs {
		if e.Seq <= 0 {
			bySeq = false
			break
		}
	}
	slices.SortFunc(evs, func(a, b Event) int {
		if bySeq {
			if c := cmp.Compare(a.Seq, b.Seq); c != 0 {
				return c
			}
		}
		if c := a.OccurredAt.Compare(b.OccurredAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// Derive folds one request's events (any order; duplicates by id count
// once) into its fact. Rules:
//
//   - dimensions come from request.created;
//   - the status is the last transition's target (request.created's status
//     before any transition);
//   - assigned_at and arrived_at are the first transitions to assigned and
//     arrived (a re-dispatch does not reset the customer's clock);
//     completed_at and cancelled_at the last to completed and cancelled;
//   - the insurance outcome is the last request.insurance_checked;
//   - distance and ETA are the last ones an event carried: an offer's once
//     it was accepted, any other event's at once.
func Derive(requestID string, evs []Event) RequestFact {
	evs = dedupe(evs)
	Order(evs)
	f := RequestFact{RequestID: requestID}
	if t, ok := id.Time(requestID); ok {
		f.CreatedAt = t
	}
	var createdExact time.Time
	offers := map[string]*Assignment{} // offered, not (yet) accepted
	take := func(a *Assignment) {
		if a.DistanceKm != nil {
			f.DistanceKm = a.DistanceKm
		}
		if a.ETASeconds != nil {
			f.ETASeconds = a.ETASeconds
		}
	}
	for _, e := range evs {
		f.Events++
		if e.OccurredAt.After(f.LastEventAt) {
			f.LastEventAt = e.OccurredAt
		}
		f.Seq = max(f.Seq, e.Seq)
		switch a := e.Assignment; {
		case a != nil && a.OfferID != "" && e.Type != TypeOfferClosed:
			offers[a.OfferID] = a
		case a != nil:
			take(a)
		}
		if a, ok := offers[e.OfferAccepted]; ok {
			take(a)
		}
		switch {
		case e.Created != nil:
			c := e.Created
			f.HasCreated = true
			f.Province, f.District, f.Cell = c.Province, c.District, c.Cell
			f.ServiceType, f.VehicleType, f.Insurer = c.ServiceType, c.VehicleType, c.Insurer
			f.DestProvince, f.DestCell, f.TowDistanceKm = c.DestProvince, c.DestCell, c.TowDistanceKm
			createdExact = cmp.Or(c.At, e.OccurredAt)
			if f.Status == "" {
				f.Status, f.StatusAt = c.Status, createdExact
			}
			if f.InsuranceStatus == "" {
				f.InsuranceStatus = c.InsuranceStatus
			}
		case e.Status != nil:
			s := e.Status
			at := cmp.Or(s.At, e.OccurredAt)
			f.Status, f.StatusAt = s.To, at
			switch s.To {
			case "assigned":
				if f.AssignedAt == nil {
					f.AssignedAt = &at
				}
			case "arrived":
				if f.ArrivedAt == nil {
					f.ArrivedAt = &at
				}
			case "completed":
				f.CompletedAt = &at
			case "cancelled":
				f.CancelledAt = &at
				f.CancelReason, f.CancelledBy = s.Reason, e.ActorRole
			case "unfulfilled":
				f.UnfulfilledReason = s.Reason
			}
		case e.Insurance != nil:
			at := cmp.Or(e.Insurance.At, e.OccurredAt)
			f.InsuranceStatus, f.InsuranceAt = e.Insurance.Status, &at
			f.InsuranceFlags = strings.Join(e.Insurance.Flags, ",")
		}
	}
	if f.Status == "" && f.HasCreated {
		f.Status = "received"
	}
	start := createdExact
	if start.IsZero() {
		start = f.CreatedAt
	}
	f.TimeToAssign = secondsSince(start, f.AssignedAt)
	f.TimeToArrive = secondsSince(start, f.ArrivedAt)
	f.InsuranceLatency = secondsSince(start, f.InsuranceAt)
	return f
}

// secondsSince is t - start in seconds, to the millisecond, or nil.
func secondsSince(start time.Time, t *time.Time) *float64 {
	if t == nil || start.IsZero() {
		return nil
	}
	s := math.Round(float64(t.Sub(start).Milliseconds())) / 1000
	return &s
}

func dedupe(evs []Event) []Event {
	seen := make(map[string]bool, len(evs))
	out := make([]Event, 0, len(evs))
	for _, e := range evs {
		if !seen[e.ID] {
			seen[e.ID] = true
			out = append(out, e)
		}
	}
	return out
}
