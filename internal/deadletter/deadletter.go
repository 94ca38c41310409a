// Package deadletter keeps the messages that consumers gave up on after
// their last delivery, so that operators can see why and send them again
// once the cause is fixed. It is the database side of the bus's DeadLetter
// hook; it does not talk to the broker.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/yolda/yolda/internal/id"
	"github.com/yolda/yolda/internal/outbox"
)

// ErrNotFound: no dead letter with that id.
var ErrNotFound = errors.New("dead letter not found")

// Letter is one message a consumer could not process.
type Letter struct {
	ID         string     `json:"id"`
	Consumer   string     `json:"consumer"`
	Stream     string     `json:"stream"`
	Subject    string     `json:"subject"`
	MessageID  string     `json:"message_id"`
	Payload    []byte     `json:"payload"`
	Error      string     `json:"error"`
	Deliveries int        `json:"deliveries"`
	CreatedAt  time.Time  `json:"created_at"`
	RedrivenAt *time.Time `json:"redriven_at"`
}

// Store keeps dead letters.
type Store interface {
	// AddDeadLetter records l unless the same consumer already recorded
	// the same message id (the bus hook runs at least once).
	AddDeadLetter(ctx context.Context, l Letter) error
	// DeadLetters lists letters newest first, older than before if set.
	DeadLetters(ctx context.Context, before string, limit int) ([]Letter, error)
	// RedriveDeadLetter marks the letter re-driven at and commits msg to
	// the outbox in the same transaction. ErrNotFound if there is none.
	RedriveDeadLetter(ctx context.Context, id string, at time.Time, msg func(Letter) outbox.Message) (Letter, error)
}

// Service is the dead-letter use cases.
type Service struct {
	store Store
	now   func() time.Time
}

// NewService returns a service over store.
func NewService(store Store, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, now: now}
}

// Record stores a message a consumer gave up on.
func (s *Service) Record(ctx context.Context, consumer, stream, subject, messageID string, payload []byte, cause error, deliveries int) error {
	now := s.now().UTC()
	l := Letter{
		ID: id.New("dlq", now), Consumer: consumer, Stream: stream, Subject: subject, MessageID: messageID,
		Payload: payload, Error: cause.Error(), Deliveries: deliveries, CreatedAt: now,
	}
	if err := s.store.AddDeadLetter(ctx, l); err != nil {
		return fmt.Errorf("record dead letter: %w", err)
	}
	return nil
}

// List returns a page of letters.
func (s *Service) List(ctx context.Context, before string, limit int) ([]Letter, error) {
	return s.store.DeadLetters(ctx, before, limit)
}

// Retry sends the letter's message again through the outbox. The new
// outbox row gets a fresh broker message id (the old one may still be in
// the broker's duplicate window) but the payload, and so the envelope id
// that consumers deduplicate on, stays the same.
func (s *Service) Retry(ctx context.Context, letterID string) (Letter, error) {
	now := s.now().UTC()
	return s.store.RedriveDeadLetter(ctx, letterID, now, func(l Letter) outbox.Message {
		return outbox.Message{ID: id.New("msg", now), Subject: l.Subject, Payload: l.Payload, CreatedAt: now}
	})
}
