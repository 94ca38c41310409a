package fleet

import (
	"strconv"
	"time"

	"github.com/yolda/yolda/internal/validate"
)

// MaxAbsLat is the largest latitude a driver may report: what every index
// backend can hold (Redis GEO stops at ±85.05°).
const MaxAbsLat = 85.05

// PositionReport is one location message of a driver's device, over REST
// (POST /v1/drivers/me/location) or the WebSocket. Pointers tell a missing
// field from a zero.
type PositionReport struct {
	Lat        *float64 `json:"lat"`
	Lng        *float64 `json:"lng"`
	Heading    *float64 `json:"heading,omitempty"`
	SpeedKmh   *float64 `json:"speed_kmh,omitempty"`
	AccuracyM  *float64 `json:"accuracy_m,omitempty"`
	RecordedAt string   `json:"recorded_at"`
}

// Position is a validated report.
type Position struct {
	Lat, Lng   float64
	Heading    *float64
	SpeedKmh   *float64
	AccuracyM  *float64
	RecordedAt time.Time
}

// Validate checks a report measured at most maxAge before now and at most
// skew after it (device clocks drift a little; a fix from the future or
// from long ago is a bug or a replay, not a position).
func (r PositionReport) Validate(now time.Time, maxAge, skew time.Duration) (Position, error) {
	var errs validate.Errors
	var p Position
	number := func(field string, v *float64, required bool, lo, hi float64, hiOpen bool) float64 {
		switch {
		case v == nil:
			if required {
				errs.Add(field, "is required")
			}
			return 0
		case *v < lo || *v > hi || hiOpen && *v == hi:
			bound := "]"
			if hiOpen {
				bound = ")"
			}
			errs.Add(field, "must be in ["+ftoa(lo)+", "+ftoa(hi)+bound)
		}
		return *v
	}
	p.Lat = number("lat", r.Lat, true, -MaxAbsLat, MaxAbsLat, false)
	p.Lng = number("lng", r.Lng, true, -180, 180, false)
	number("heading", r.Heading, false, 0, 360, true)
	number("speed_kmh", r.SpeedKmh, false, 0, 400, false)
	number("accuracy_m", r.AccuracyM, false, 0, 100000, false)
	p.Heading, p.SpeedKmh, p.AccuracyM = r.Heading, r.SpeedKmh, r.AccuracyM
	if r.RecordedAt == "" {
		errs.Add("recorded_at", "is required")
	} else if at, err := time.Parse(time.RFC3339Nano, r.RecordedAt); err != nil {
		errs.Add("recorded_at", "must be an RFC 3339 time, e.g. 2026-11-26T10:00:00Z")
	} else {
		switch {
		case at.After(now.Add(skew)):
			errs.Add("recorded_at", "is in the future (more than "+skew.String()+" ahead of the server)")
		case at.Before(now.Add(-maxAge)):
			errs.Add("recorded_at", "is older than "+maxAge.String())
		}
		p.RecordedAt = at.UTC()
	}
	return p, errs.Err()
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
