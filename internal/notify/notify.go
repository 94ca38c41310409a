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
	// RecordNotificationBatch commits, in one transaction, every record
	// whose receipt is not yet recorded: its receipt and its
	// notifications. A record whose receipt was recorded before, or by an
	// earlier record of the batch, stores nothing. stored[i] tells whether
	// rs[i] was stored now. A non-nil error means nothing was committed.
	RecordNotificationBatch(ctx context.Context, rs []Record) (stored []bool, err error)
	// Notifications lists a request's notifications, oldest first.
	Notifications(ctx context.Context, requestID string) ([]Notification, error)
}

// Record is what one event leaves behind: its receipt and the
// notifications it caused (possibly none: the receipt alone says the event
// was handled).
type Record struct {
	Receipt       outbox.Receipt
	Notifications []Notification
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
	results, err := w.HandleBatch(ctx, [][]byte{payload})
	if err != nil {
		return err
	}
	return results[0]
}

// HandleBatch processes event envelopes together: the notifications of all
// of them are committed in one transaction, each event's with its receipt,
// so a batch costs one commit however many events it holds, and an event
// delivered again (in this batch or a later one) notifies nobody twice.
// results[i] is the outcome of payloads[i]: nil (stored, already stored,
// or nothing to tell anyone) or why the event cannot be read, which
// delivering it again will not change. A non-nil error means nothing was
// committed.
func (w *Worker) HandleBatch(ctx context.Context, payloads [][]byte) (results []error, err error) {
	results = make([]error, len(payloads))
	records := make([]Record, 0, len(payloads))
	for i, p := range payloads {
		n, ok, err := w.notification(p)
		switch {
		case err != nil:
			results[i] = err
		case ok:
			records = append(records, Record{Receipt: outbox.Receipt{Consumer: Consumer, MessageID: n.envelopeID},
				Notifications: []Notification{n.Notification}})
		}
	}
	if len(records) == 0 {
		return results, nil
	}
	if _, err := w.store.RecordNotificationBatch(ctx, records); err != nil {
		return nil, fmt.Errorf("record notifications: %w", err)
	}
	return results, nil
}

// pendingNotification is a notification with the event that caused it.
type pendingNotification struct {
	Notification
	envelopeID string
}

// notification reads one event and returns the notification it causes, if
// any (ok false: the customer need not hear about it).
func (w *Worker) notification(payload []byte) (n pendingNotification, ok bool, err error) {
	env, err := outbox.Decode(payload)
	if errors.Is(err, outbox.ErrMalformed) {
		return n, false, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err != nil {
		return n, false, err
	}
	if env.RequestID == "" {
		return n, false, fmt.Errorf("%w: %s has no request id", ErrMalformed, env.ID)
	}
	var owner, template, body string
	switch env.Type {
	case outbox.EventRequestCreated:
		// The two fields this needs of intake.CreatedEvent: decoding the
		// whole request was most of this worker's time.
		var data struct {
			Request struct {
				ServiceType intake.ServiceType `json:"service_type"`
			} `json:"request"`
			OwnerID string `json:"owner_id"`
		}
		if err := json.Unmarshal(env.Data, &data); err != nil {
			return n, false, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		owner, template = data.OwnerID, "request.received"
		body = "We received your request for " + serviceName(data.Request.ServiceType) + ". We are finding the nearest help."
	case outbox.EventRequestStatusChanged:
		var data intake.StatusChange
		if err := json.Unmarshal(env.Data, &data); err != nil {
			return n, false, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		text, ok := statusText[data.To]
		if !ok {
			return n, false, nil // nothing to tell the customer
		}
		owner, template, body = data.OwnerID, "request."+string(data.To), text
	default:
		return n, false, nil
	}
	if owner == "" {
		return n, false, fmt.Errorf("%w: no owner in %s", ErrMalformed, env.Type)
	}
	now := w.now().UTC().Truncate(time.Microsecond)
	return pendingNotification{
		Notification: Notification{
			ID: id.New("ntf", now), RequestID: env.RequestID, RecipientID: owner,
			Channel: "push", Template: template, Body: body, CreatedAt: now,
		},
		envelopeID: env.ID,
	}, true, nil
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
