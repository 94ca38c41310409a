// Package notify turns request events into notifications for the people
// concerned: today the customer who asked for help, on the "push" channel.
// Each notification is committed with the receipt of the event that caused
// it, so a redelivered event never notifies twice. Sending them through a
// push or SMS provider is a separate concern that reads what is stored here.
package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/yolda/yolda/internal/id"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
)

// Consumer is this worker's durable consumer name; receipts carry it.
const Consumer = "notify"

// Notification is one message to one person about one request.
type Notification struct {
	ID          string    `json:"id"`
	RequestID   string    `json:"request_id"`
	RecipientID string    `json:"recipient_id"`
	Channel     string    `json:"channel"`
	Template    string    `json:"template"`
	Body        string    `json:"body"`
	CreatedAt   time.Time `json:"created_at"`
}

// Store keeps notifications.
type Store interface {
	// RecordNotifications commits ns together with the receipt. If the
	// receipt exists it returns outbox.ErrAlreadyProcessed and stores
	// nothing.
	RecordNotifications(ctx context.Context, r outbox.Receipt, ns []Notification) error
	// Notifications lists a request's notifications, oldest first.
	Notifications(ctx context.Context, requestID string) ([]Notification, error)
}

// Worker handles request events.
type Worker struct {
	store Store
	now   func() time.Time
}

// NewWorker returns a worker over store.
func NewWorker(store Store, now func() time.Time) *Worker {
	if now == nil {
		now = time.Now
	}
	return &Worker{store: store, now: now}
}

// ErrMalformed: the event cannot be read; retrying will not help.
var ErrMalformed = errors.New("malformed event")

// Handle processes one event envelope. It is idempotent: the envelope id
// is the receipt.
func (w *Worker) Handle(ctx context.Context, payload []byte) error {
	var env outbox.Envelope
	if err := json.Unmarshal(payload, &env); err != nil || env.ID == "" || env.RequestID == "" {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	var owner, template, body string
	switch env.Type {
	case outbox.EventRequestCreated:
		var data intake.CreatedEvent
		if err := json.Unmarshal(env.Data, &data); err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		owner, template = data.OwnerID, "request.received"
		body = "We received your request for " + serviceName(data.Request.ServiceType) + ". We are finding the nearest help."
	case outbox.EventRequestStatusChanged:
		var data intake.StatusChange
		if err := json.Unmarshal(env.Data, &data); err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		text, ok := statusText[data.To]
		if !ok {
			return nil // nothing to tell the customer
		}
		owner, template, body = data.OwnerID, "request."+string(data.To), text
	default:
		return nil
	}
	if owner == "" {
		return fmt.Errorf("%w: no owner in %s", ErrMalformed, env.Type)
	}
	now := w.now().UTC().Truncate(time.Microsecond)
	n := Notification{
		ID: id.New("ntf", now), RequestID: env.RequestID, RecipientID: owner,
		Channel: "push", Template: template, Body: body, CreatedAt: now,
	}
	err := w.store.RecordNotifications(ctx, outbox.Receipt{Consumer: Consumer, MessageID: env.ID}, []Notification{n})
	if errors.Is(err, outbox.ErrAlreadyProcessed) {
		return nil
	}
	return err
}

var statusText = map[intake.Status]string{
	intake.StatusAwaitingInsurance: "We are confirming your cover with your insurer.",
	intake.StatusAssigned:          "A driver is assigned to your request.",
	intake.StatusEnRoute:           "Your driver is on the way.",
	intake.StatusArrived:           "Your driver has arrived.",
	intake.StatusCompleted:         "Your assistance is complete. Safe travels.",
	intake.StatusCancelled:         "Your request is cancelled.",
	intake.StatusRejected:          "Your insurer did not confirm cover for this request.",
	intake.StatusUnfulfilled:       "We could not find a driver yet; our operators are on it and will call you.",
}

func serviceName(s intake.ServiceType) string {
	switch s {
	case intake.Tow:
		return "a tow"
	case intake.JumpStart:
		return "a jump start"
	case intake.FlatTire:
		return "a flat tyre"
	case intake.FuelDelivery:
		return "fuel"
	case intake.Lockout:
		return "a lockout"
	case intake.Winch:
		return "a winch"
	}
	return "assistance"
}
