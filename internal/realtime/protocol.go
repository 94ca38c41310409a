package realtime

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/intake"
)

// Message types, as in CONTRACT.md ("Realtime"), and the ones this build
// adds (offer.closed).
const (
	// Server to client.
	TypeStatus      = "request.status"
	TypeLocation    = "driver.location"
	TypeOffer       = "offer"
	TypeOfferClosed = "offer.closed"
	TypeError       = "error"

	// Client to server.
	TypeReport      = "location"
	TypeSubscribe   = "subscribe"
	TypeUnsubscribe = "unsubscribe"
	TypeResume      = "resume"
)

// AllRequests is the request id with which staff subscribe to every
// request's status changes.
const AllRequests = "*"

// Close codes beyond RFC 6455's, in the range it leaves to applications
// (docs/realtime.md). The reason text says what to do.
const (
	// CloseTokenExpired: the token's lifetime ended. Log in again, then
	// reconnect and resume.
	CloseTokenExpired = 4001
	// CloseTokenRefused: the token no longer speaks for the account
	// (revoked, account disabled or changed role).
	CloseTokenRefused = 4003
	// CloseTooSlow: the client did not read its status messages fast
	// enough; reconnect and resume from the last seq seen.
	CloseTooSlow = 4008
)

// clientMessage is any message a client sends: the fields of every type
// (unknown fields are ignored, so that a newer client still talks to an
// older server).
type clientMessage struct {
	Type      string `json:"type"`
	RequestID string `json:"request_id"`
	AfterSeq  *int   `json:"after_seq"`
	fleet.PositionReport
}

// statusMessage is a request.status message.
type statusMessage struct {
	Type      string        `json:"type"`
	RequestID string        `json:"request_id"`
	Status    intake.Status `json:"status"`
	At        time.Time     `json:"at"`
	Seq       int           `json:"seq"`
	// Reason is the change's, when it has one (a cancellation's).
	Reason string `json:"reason,omitempty"`
}

func encodeStatus(requestID string, status intake.Status, at time.Time, seq int, reason string) []byte {
	b, _ := json.Marshal(statusMessage{Type: TypeStatus, RequestID: requestID, Status: status, At: at.UTC(), Seq: seq, Reason: reason})
	return b
}

// offerMessage is an offer message: the offer as GET /v1/drivers/me/offers
// lists it.
type offerMessage struct {
	Type        string             `json:"type"`
	OfferID     string             `json:"offer_id"`
	RequestID   string             `json:"request_id"`
	ServiceType intake.ServiceType `json:"service_type"`
	Location    intake.Location    `json:"location"`
	DistanceM   int                `json:"distance_m"`
	ETASeconds  int                `json:"eta_seconds"`
	ExpiresAt   time.Time          `json:"expires_at"`
}

type offerClosedMessage struct {
	Type      string    `json:"type"`
	OfferID   string    `json:"offer_id"`
	RequestID string    `json:"request_id"`
	Status    string    `json:"status"`
	At        time.Time `json:"at"`
}

// errorMessage is an error message; RequestID names the request a
// subscription was refused for, Errors the fields of a refused report.
type errorMessage struct {
	Type      string       `json:"type"`
	Message   string       `json:"message"`
	RequestID string       `json:"request_id,omitempty"`
	Errors    []fieldError `json:"errors,omitempty"`
}

type fieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func encodeError(msg, requestID string, fields []fieldError) []byte {
	b, _ := json.Marshal(errorMessage{Type: TypeError, Message: msg, RequestID: requestID, Errors: fields})
	return b
}

// Position is a driver position as gateways broadcast it to one another:
// what a report said, and when the gateway that took it broadcast it (its
// clock, for the fan-out latency metric).
type Position struct {
	DriverID string    `json:"d"`
	Lat      float64   `json:"lat"`
	Lng      float64   `json:"lng"`
	Heading  *float64  `json:"h,omitempty"`
	SpeedKmh *float64  `json:"v,omitempty"`
	At       time.Time `json:"at"`
	SentAt   time.Time `json:"t"`
}

// PositionOf is the broadcast of a validated report of driverID.
func PositionOf(driverID string, p fleet.Position, now time.Time) Position {
	return Position{DriverID: driverID, Lat: p.Lat, Lng: p.Lng, Heading: p.Heading, SpeedKmh: p.SpeedKmh, At: p.RecordedAt, SentAt: now}
}

// Encode is the position's broadcast payload.
func (p Position) Encode() []byte {
	b, _ := json.Marshal(p)
	return b
}

// DecodePosition reads a broadcast payload.
func DecodePosition(data []byte) (Position, error) {
	var p Position
	err := json.Unmarshal(data, &p)
	return p, err
}

// PositionSubjectPrefix heads the plain subject of each driver's
// positions, PositionSubject(driverID); PositionSubjects matches them all.
const (
	PositionSubjectPrefix = "positions.driver."
	PositionSubjects      = PositionSubjectPrefix + "*"
)

// PositionSubject is where driverID's positions are broadcast.
func PositionSubject(driverID string) string { return PositionSubjectPrefix + driverID }

// appendLocation appends the driver.location message of p, about
// requestID at seq (none: ""), to b. Hand-written: it is the message every
// position becomes once per watching request, thousands of times a second.
func appendLocation(b []byte, requestID string, seq int, p Position) []byte {
	b = append(b, `{"type":"driver.location","request_id":`...)
	if requestID == "" {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendQuote(b, requestID)
	}
	b = append(b, `,"driver_id":`...)
	b = strconv.AppendQuote(b, p.DriverID)
	b = append(b, `,"lat":`...)
	b = strconv.AppendFloat(b, p.Lat, 'f', -1, 64)
	b = append(b, `,"lng":`...)
	b = strconv.AppendFloat(b, p.Lng, 'f', -1, 64)
	b = append(b, `,"heading":`...)
	b = appendOptional(b, p.Heading)
	b = append(b, `,"speed_kmh":`...)
	b = appendOptional(b, p.SpeedKmh)
	b = append(b, `,"at":"`...)
	b = p.At.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","seq":`...)
	b = strconv.AppendInt(b, int64(seq), 10)
	return append(b, '}')
}

func appendOptional(b []byte, v *float64) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, *v, 'f', -1, 64)
}
