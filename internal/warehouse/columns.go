package warehouse

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/yolda/yolda/internal/id"
)

// FactColumns are the columns of the request facts table in every engine,
// in the order FactValues gives them.
var FactColumns = []string{
	"request_id", "created_at", "hour_of_day", "has_created", "province", "district", "cell", "service_type", "vehicle_type", "insurer",
	"dest_province", "dest_cell", "status", "status_at", "assigned_at", "arrived_at", "completed_at", "cancelled_at",
	"time_to_assign_ms", "time_to_arrive_ms", "distance_km", "eta_s", "tow_distance_km",
	"insurance_status", "insurance_at", "insurance_latency_ms", "insurance_flags",
	"cancel_reason", "cancelled_by", "unfulfilled_reason", "events", "last_event_at", "seq",
}

// FactValues is f as one row of FactColumns: times in UTC, absent values
// nil.
func FactValues(f RequestFact) []any {
	tp := func(t *time.Time) any {
		if t == nil {
			return nil
		}
		return t.UTC()
	}
	fp := func(x *float64) any {
		if x == nil {
			return nil
		}
		return *x
	}
	// Durations are stored as integer milliseconds: exact in every
	// engine, and much faster to take percentiles of than floats.
	msp := func(x *float64) any {
		if x == nil {
			return nil
		}
		return int64(math.Round(*x * 1000))
	}
	t := func(x time.Time) any {
		if x.IsZero() {
			return nil
		}
		return x.UTC()
	}
	return []any{
		f.RequestID, f.CreatedAt.UTC(), HourOfDay(f.CreatedAt), f.HasCreated, f.Province, f.District, f.Cell, f.ServiceType, f.VehicleType, f.Insurer,
		f.DestProvince, f.DestCell, f.Status, t(f.StatusAt), tp(f.AssignedAt), tp(f.ArrivedAt), tp(f.CompletedAt), tp(f.CancelledAt),
		msp(f.TimeToAssign), msp(f.TimeToArrive), fp(f.DistanceKm), fp(f.ETASeconds), fp(f.TowDistanceKm),
		f.InsuranceStatus, tp(f.InsuranceAt), msp(f.InsuranceLatency), f.InsuranceFlags,
		f.CancelReason, f.CancelledBy, f.UnfulfilledReason, int64(f.Events), t(f.LastEventAt), f.Seq,
	}
}

// HourOfDay is the hour on Turkey's clock of t, the hour_of_day dimension.
// Facts store it: grouping by a small number is several times cheaper than
// by an expression over every row's timestamp.
func HourOfDay(t time.Time) int64 { return int64(t.UTC().Add(TurkeyOffset).Hour()) }

// EventColumns are the columns of the events fact.
var EventColumns = []string{"event_id", "type", "request_id", "occurred_at", "seq", "actor_role", "payload"}

// EventValues is e as one row of EventColumns; payload is e's JSON.
func EventValues(e Event) ([]any, error) {
	payload, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", e.ID, err)
	}
	var seq any
	if e.Seq > 0 {
		seq = e.Seq
	}
	return []any{e.ID, e.Type, e.RequestID, e.OccurredAt.UTC(), seq, e.ActorRole, string(payload)}, nil
}

// DecodeStored reads an events fact's payload back.
func DecodeStored(payload []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(payload, &e); err != nil {
		return Event{}, fmt.Errorf("stored event: %w", err)
	}
	return e, nil
}

// CallColumns are the columns of the insurer calls fact.
var CallColumns = []string{"event_id", "request_id", "insurer", "called_at", "latency_ms", "outcome", "error_kind", "attempts"}

// CallValues is e's call as one row of CallColumns; ok is false when e is
// not an insurance.call.
func CallValues(e Event) (row []any, ok bool) {
	c := e.Call
	if c == nil {
		return nil, false
	}
	at := c.At
	if at.IsZero() {
		at = e.OccurredAt
	}
	return []any{e.ID, e.RequestID, c.Insurer, at.UTC(), c.LatencyMs, c.Outcome, c.ErrorKind, int64(c.Attempts)}, true
}

// LookBehind is how long before its request's creation an event may have
// occurred and still be found when the request's fact is re-derived: the
// clocks of the processes writing a request's events may differ by that
// much at most.
const LookBehind = 24 * time.Hour

// EarliestFor is the earliest occurred_at an event of any of the requests
// can have (their creation minus LookBehind); stores use it to skip old
// partitions and row groups. Zero when an id carries no time.
func EarliestFor(requestIDs []string) time.Time {
	var min time.Time
	for _, r := range requestIDs {
		t, ok := id.Time(r)
		if !ok {
			return time.Time{}
		}
		if min.IsZero() || t.Before(min) {
			min = t
		}
	}
	if min.IsZero() {
		return min
	}
	return min.Add(-LookBehind)
}

// Normalize turns what a SQL driver scanned into a report Value: text as
// string, integers as int64, floats as float64 (NaN as nil), times as
// RFC 3339 UTC strings. Engines differ in what they hand back for the same
// column; the conformance suite compares the normalised rows.
func Normalize(v any) Value {
	switch x := v.(type) {
	case nil:
		return nil
	case []byte:
		return string(x)
	case string:
		return x
	case int:
		return int64(x)
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case int64:
		return x
	case uint32:
		return int64(x)
	case uint64:
		return int64(x)
	case float32:
		return Normalize(float64(x))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
		return x
	case bool:
		return x
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprint(v)
}

// Share is part/whole rounded to four decimals, or nil when whole is 0.
// Computed here, not in SQL, so that both engines give the same digits.
func Share(part, whole Value) Value {
	p, _ := part.(int64)
	w, _ := whole.(int64)
	if w == 0 {
		return nil
	}
	return math.Round(float64(p)/float64(w)*10000) / 10000
}
