package warehouse

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/yolda/yolda/internal/fold"
	"github.com/yolda/yolda/internal/geo"
	"github.com/yolda/yolda/internal/insurance"
)

// Event types the warehouse derives facts from. Any other type is kept in
// the events fact (id, type, request, time, sequence, actor role) without
// its data, since the warehouse cannot know which of its fields are
// personal.
const (
	TypeRequestCreated    = "request.created"
	TypeStatusChanged     = "request.status_changed"
	TypeInsuranceChecked  = "request.insurance_checked"
	TypeInsuranceCall     = "insurance.call"
	TypeOfferClosed       = "offer.closed"
	supportedEnvelopeVers = 1
)

// ErrMalformed: the message is not an event envelope the warehouse can
// read. Redelivering it will not help.
var ErrMalformed = errors.New("malformed event")

// Event is one event as the warehouse keeps it: the envelope's identity and
// time, and only the fields of its data that reports use, stripped of
// personal data. It is also the JSON the events fact stores, from which
// `rebuild --from-warehouse` re-derives every other fact, so fields are
// added, never renamed.
type Event struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	RequestID  string    `json:"request_id,omitempty"`
	OccurredAt time.Time `json:"occurred_at"`
	// Seq is the request's version after the change, when the producer
	// sends one (0 when it does not).
	Seq       int64  `json:"seq,omitempty"`
	ActorRole string `json:"actor_role,omitempty"`

	Created    *Created        `json:"created,omitempty"`
	Status     *Transition     `json:"status,omitempty"`
	Insurance  *Insurance      `json:"insurance,omitempty"`
	Assignment *Assignment     `json:"assignment,omitempty"`
	Call       *insurance.Call `json:"call,omitempty"`
	// OfferAccepted is the offer an offer.closed event accepted.
	OfferAccepted string `json:"offer_accepted,omitempty"`
}

// Created is what a request.created event tells the warehouse.
type Created struct {
	At              time.Time `json:"at"`
	Status          string    `json:"status"`
	ServiceType     string    `json:"service_type"`
	VehicleType     string    `json:"vehicle_type"`
	Insurer         string    `json:"insurer"`
	Province        string    `json:"province"`
	District        string    `json:"district"`
	Cell            string    `json:"cell"`
	DestProvince    string    `json:"dest_province,omitempty"`
	DestCell        string    `json:"dest_cell,omitempty"`
	TowDistanceKm   *float64  `json:"tow_distance_km,omitempty"`
	InsuranceStatus string    `json:"insurance_status"`
}

// Transition is a request.status_changed event.
type Transition struct {
	From   string    `json:"from"`
	To     string    `json:"to"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason,omitempty"`
}

// Insurance is a request.insurance_checked event.
type Insurance struct {
	Status string    `json:"status"`
	Flags  []string  `json:"flags,omitempty"`
	At     time.Time `json:"at"`
}

// Assignment is what any event says about the job's distance and ETA
// (dispatch's offers, or an ETA in a status change). Values that come
// with an offer count only once that offer is accepted (OfferAccepted).
type Assignment struct {
	ETASeconds *float64 `json:"eta_seconds,omitempty"`
	DistanceKm *float64 `json:"distance_km,omitempty"`
	OfferID    string   `json:"offer_id,omitempty"`
}

// envelope is the part of the producer's envelope the warehouse reads.
type envelope struct {
	ID         string                `json:"id"`
	Type       string                `json:"type"`
	Version    int                   `json:"version"`
	OccurredAt time.Time             `json:"occurred_at"`
	RequestID  string                `json:"request_id"`
	Seq        int64                 `json:"seq"`
	Actor      struct{ Role string } `json:"actor"`
	Data       json.RawMessage       `json:"data"`
}

// Decode reads an event envelope (docs/events.md) and keeps what the
// warehouse may keep. Errors wrap ErrMalformed.
func Decode(payload []byte) (Event, error) {
	var env envelope
	if err := json.Unmarshal(payload, &env); err != nil {
		return Event{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if env.ID == "" || env.Type == "" || env.OccurredAt.IsZero() {
		return Event{}, fmt.Errorf("%w: id, type and occurred_at are required", ErrMalformed)
	}
	if env.Version != supportedEnvelopeVers {
		return Event{}, fmt.Errorf("%w: envelope version %d", ErrMalformed, env.Version)
	}
	e := Event{
		ID: env.ID, Type: env.Type, RequestID: env.RequestID, OccurredAt: env.OccurredAt.UTC(),
		Seq: env.Seq, ActorRole: env.Actor.Role,
	}
	var err error
	switch env.Type {
	case TypeRequestCreated:
		e.Created, err = decodeCreated(env.Data)
	case TypeStatusChanged:
		e.Status, err = decodeTransition(env.Data)
	case TypeInsuranceChecked:
		e.Insurance, err = decodeInsurance(env.Data)
	case TypeInsuranceCall:
		e.Call, err = decodeCall(env.Data)
	case TypeOfferClosed:
		var d struct {
			OfferID string `json:"offer_id"`
			Status  string `json:"status"`
		}
		if json.Unmarshal(env.Data, &d) == nil && d.Status == "accepted" {
			e.OfferAccepted = label(d.OfferID)
		}
	}
	if err != nil {
		return Event{}, fmt.Errorf("%w: %s data: %w", ErrMalformed, env.Type, err)
	}
	var seq int64
	e.Assignment, seq = decodeAssignment(env.Data)
	if e.Seq == 0 {
		e.Seq = seq
	}
	return e, nil
}

func decodeCreated(data json.RawMessage) (*Created, error) {
	var d struct {
		Request struct {
			Status      string    `json:"status"`
			ServiceType string    `json:"service_type"`
			CreatedAt   time.Time `json:"created_at"`
			Location    place     `json:"location"`
			Destination *place    `json:"destination"`
			Vehicle     struct {
				Type string `json:"type"`
			} `json:"vehicle"`
			Policy struct {
				Insurer string `json:"insurer"`
			} `json:"policy"`
			Insurance struct {
				Status string `json:"status"`
			} `json:"insurance"`
		} `json:"request"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, err
	}
	r := d.Request
	c := &Created{
		At: r.CreatedAt.UTC(), Status: r.Status, ServiceType: label(r.ServiceType), VehicleType: label(r.Vehicle.Type),
		Insurer: label(r.Policy.Insurer), Province: label(fold.Province(r.Location.Province)), District: label(r.Location.District),
		Cell: Cell(r.Location.Lat, r.Location.Lng), InsuranceStatus: label(r.Insurance.Status),
	}
	if dst := r.Destination; dst != nil {
		c.DestProvince = label(fold.Province(dst.Province))
		c.DestCell = Cell(dst.Lat, dst.Lng)
		km := math.Round(geo.DistanceKm(r.Location.Lat, r.Location.Lng, dst.Lat, dst.Lng)*10) / 10
		c.TowDistanceKm = &km
	}
	return c, nil
}

type place struct {
	Lat      float64 `json:"lat"`
	Lng      float64 `json:"lng"`
	Province string  `json:"province"`
	District string  `json:"district"`
}

func decodeTransition(data json.RawMessage) (*Transition, error) {
	var d Transition
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, err
	}
	if d.To == "" {
		return nil, errors.New("to is required")
	}
	d.From, d.To, d.At, d.Reason = label(d.From), label(d.To), d.At.UTC(), Scrub(d.Reason)
	return &d, nil
}

func decodeInsurance(data json.RawMessage) (*Insurance, error) {
	var d Insurance
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, err
	}
	d.Status, d.At = label(d.Status), d.At.UTC()
	for i, f := range d.Flags {
		d.Flags[i] = label(f)
	}
	return &d, nil
}

func decodeCall(data json.RawMessage) (*insurance.Call, error) {
	var d insurance.Call
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, err
	}
	if d.Insurer == "" {
		return nil, errors.New("insurer is required")
	}
	d.Insurer, d.Outcome, d.ErrorKind, d.At = label(d.Insurer), label(d.Outcome), label(d.ErrorKind), d.At.UTC()
	return &d, nil
}

// decodeAssignment reads a distance or an ETA wherever a producer puts
// them: at the top of data or under "assignment", in kilometres or metres.
// Dispatch's events are young; reading what exists beats guessing a name.
//
// It also returns the sequence a producer put in data rather than the
// envelope (0 if none). One pass reads both; when data does not fit (a
// field of another type), each is read alone, so that a bad one does not
// spoil the other.
func decodeAssignment(data json.RawMessage) (*Assignment, int64) {
	var d struct {
		assignFields
		Assignment *assignFields `json:"assignment"`
		Seq        int64         `json:"seq"`
	}
	if json.Unmarshal(data, &d) != nil {
		var a struct {
			assignFields
			Assignment *assignFields `json:"assignment"`
		}
		if json.Unmarshal(data, &a) != nil {
			return nil, dataSeq(data)
		}
		d.assignFields, d.Assignment, d.Seq = a.assignFields, a.Assignment, dataSeq(data)
	}
	return assignmentOf(d.assignFields, d.Assignment), d.Seq
}

// assignFields are where producers put a distance or an ETA.
type assignFields struct {
	ETASeconds *float64 `json:"eta_seconds"`
	DistanceKm *float64 `json:"distance_km"`
	DistanceM  *float64 `json:"distance_m"`
	OfferID    string   `json:"offer_id"`
}

// assignmentOf is the assignment the top-level fields f, or else those
// under "assignment", give.
func assignmentOf(f assignFields, nested *assignFields) *Assignment {
	if nested != nil && f.ETASeconds == nil && f.DistanceKm == nil && f.DistanceM == nil {
		f = *nested
	}
	if f.DistanceKm == nil && f.DistanceM != nil {
		km := *f.DistanceM / 1000
		f.DistanceKm = &km
	}
	if f.ETASeconds == nil && f.DistanceKm == nil {
		return nil
	}
	if f.DistanceKm != nil {
		km := math.Round(*f.DistanceKm*10) / 10
		f.DistanceKm = &km
	}
	return &Assignment{ETASeconds: f.ETASeconds, DistanceKm: f.DistanceKm, OfferID: label(f.OfferID)}
}

// dataSeq reads a sequence a producer put in data rather than the envelope.
func dataSeq(data json.RawMessage) int64 {
	var d struct {
		Seq int64 `json:"seq"`
	}
	_ = json.Unmarshal(data, &d)
	return d.Seq
}

// cellDegrees is the grid a location is coarsened to: 0.1 degree, about
// 11 km north-south and 8.5 km east-west at Turkey's latitudes. Enough for
// "where do breakdowns happen", too coarse to find a house.
const cellDegrees = 0.1

// Cell is the grid cell of a point, "lat,lng" of its south-west corner with
// one decimal ("41.0,28.9"); "" for the null island a client may send.
func Cell(lat, lng float64) string {
	if (lat == 0 && lng == 0) || math.IsNaN(lat) || math.IsNaN(lng) {
		return ""
	}
	f := func(x float64) float64 { return math.Floor(x/cellDegrees+1e-9) * cellDegrees }
	return fmt.Sprintf("%.1f,%.1f", f(lat), f(lng))
}

// label bounds a dimension value from a producer: valid UTF-8, no control
// characters, at most 80 bytes.
func label(s string) string {
	s = strings.ToValidUTF8(strings.TrimSpace(s), "")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	return truncate(s, 80)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// digitRun is a run of digits, possibly broken by spaces, dots, dashes or
// brackets, long enough to be a phone, policy or identity number.
var digitRun = regexp.MustCompile(`\+?\d[\d\s().-]{4,}\d`)

// platePattern is a Turkish plate: province code, letters, number
// ("34 ABC 123", "06AB1234").
var platePattern = regexp.MustCompile(`(?i)\b(0[1-9]|[1-7]\d|8[01])\s?[a-z]{1,3}\s?\d{2,4}\b`)

// emailPattern is anything shaped like an e-mail address.
var emailPattern = regexp.MustCompile(`[^\s@]+@[^\s@]+\.[^\s@]+`)

// Scrub makes a free-text reason fit to keep for years: phone-like digit
// runs, plates and e-mail addresses become "#", and it is cut to 200
// bytes. Names cannot be found reliably in free text; producers are asked
// (docs/events.md) to put only reasons in reasons.
func Scrub(s string) string {
	s = strings.ToValidUTF8(strings.TrimSpace(s), "")
	s = emailPattern.ReplaceAllString(s, "#")
	s = platePattern.ReplaceAllString(s, "#")
	s = digitRun.ReplaceAllString(s, "#")
	return truncate(s, 200)
}
