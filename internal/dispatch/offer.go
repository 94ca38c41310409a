package dispatch

import (
	"fmt"
	"time"

	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
)

// OfferStatus is where an offer stands.
type OfferStatus string

const (
	OfferOpen      OfferStatus = "open"
	OfferAccepted  OfferStatus = "accepted"
	OfferDeclined  OfferStatus = "declined"
	OfferExpired   OfferStatus = "expired"
	OfferWithdrawn OfferStatus = "withdrawn"
)

// Events dispatch emits (docs/events.md).
const (
	EventOfferCreated = "offer.created"
	EventOfferClosed  = "offer.closed"
)

// Consumer names dispatch's receipts and its durable consumer.
const Consumer = "dispatch"

// Offer is one driver asked to take one request before a deadline.
type Offer struct {
	ID         string
	RequestID  string
	DriverID   string
	Round      int
	ETASeconds int
	DistanceM  int
	Status     OfferStatus
	CreatedAt  time.Time
	ExpiresAt  time.Time
	DecidedAt  *time.Time
}

// close ends an open offer at now.
func (o *Offer) close(st OfferStatus, now time.Time) {
	o.Status = st
	at := now.UTC().Truncate(time.Microsecond)
	o.DecidedAt = &at
}

// OfferView is an open offer as its driver sees it: an item of
// GET /v1/drivers/me/offers, and the contract's WebSocket offer message
// without its type.
type OfferView struct {
	OfferID     string             `json:"offer_id"`
	RequestID   string             `json:"request_id"`
	ServiceType intake.ServiceType `json:"service_type"`
	Location    intake.Location    `json:"location"`
	DistanceM   int                `json:"distance_m"`
	ETASeconds  int                `json:"eta_seconds"`
	ExpiresAt   time.Time          `json:"expires_at"`
}

// OfferCreated is the data of an offer.created event: what the driver's
// screen shows, and whom it is for.
type OfferCreated struct {
	OfferView
	DriverID  string    `json:"driver_id"`
	Round     int       `json:"round"`
	CreatedAt time.Time `json:"created_at"`
}

// OfferClosed is the data of an offer.closed event.
type OfferClosed struct {
	OfferID   string      `json:"offer_id"`
	RequestID string      `json:"request_id"`
	DriverID  string      `json:"driver_id"`
	Status    OfferStatus `json:"status"`
	Round     int         `json:"round"`
	At        time.Time   `json:"at"`
	Reason    string      `json:"reason,omitempty"`
}

// offerCreated is the event of a new offer.
func offerCreated(o Offer, r intake.Request) (outbox.Message, error) {
	return outbox.New(outbox.EventSubject(EventOfferCreated), EventOfferCreated, o.CreatedAt, o.RequestID, outbox.SystemActor,
		OfferCreated{
			OfferView: OfferView{OfferID: o.ID, RequestID: o.RequestID, ServiceType: r.ServiceType, Location: r.Location,
				DistanceM: o.DistanceM, ETASeconds: o.ETASeconds, ExpiresAt: o.ExpiresAt},
			DriverID: o.DriverID, Round: o.Round, CreatedAt: o.CreatedAt,
		})
}

// offerClosed is the event of an offer that close ended.
func offerClosed(o Offer, actor outbox.Actor, reason string) (outbox.Message, error) {
	if o.DecidedAt == nil {
		return outbox.Message{}, fmt.Errorf("offer %s closed without a time", o.ID)
	}
	at := *o.DecidedAt
	return outbox.New(outbox.EventSubject(EventOfferClosed), EventOfferClosed, at, o.RequestID, actor,
		OfferClosed{OfferID: o.ID, RequestID: o.RequestID, DriverID: o.DriverID, Status: o.Status, Round: o.Round, At: at, Reason: reason})
}
