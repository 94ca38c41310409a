// Package outbox defines the messages that a state change leaves behind for
// the rest of the platform: jobs for workers and events for anyone who
// listens. A store writes them in the same transaction as the change they
// announce; the relay (a separate role) moves committed rows to the broker.
// Nothing here talks to a broker or a database.
package outbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/yolda/yolda/internal/id"
	"github.com/yolda/yolda/internal/identity"
)

// EnvelopeVersion is the version of the Envelope layout. Consumers must
// ignore fields they do not know and reject versions they do not.
const EnvelopeVersion = 1

// Subjects of the jobs and events that intake emits. Jobs live under
// "jobs.", events under "events."; the broker streams are split on that.
//
// A job's subject ends with the request it is about, so the broker holds at
// most one copy of a request's job of a kind and the sweeper can ask it
// whether that job is still there (docs/events.md). The functions below are
// the only place subjects and consumer filters are spelled.
const (
	SubjectInsuranceVerify = "jobs.insurance.verify" // .<insurer>.<request_id>
	SubjectDispatchRequest = "jobs.dispatch.request" // .<request_id>

	EventRequestCreated       = "request.created"
	EventRequestStatusChanged = "request.status_changed"
	// EventInsuranceCall is one policy check the insurance role made with
	// an insurer, for the warehouse's insurers report. It changes no
	// request, so it names no version.
	EventInsuranceCall = "insurance.call"
)

// InsuranceVerifySubject is the subject of the insurance check of one
// request with insurer. One subject tree per insurer lets each insurer have
// its own consumer (InsuranceVerifyFilter), so that the checks parked while
// one insurer is down never hold up another's.
func InsuranceVerifySubject(insurer, requestID string) string {
	return SubjectInsuranceVerify + "." + insurer + "." + requestID
}

// InsuranceVerifyFilter is the filter of insurer's consumer: every
// request's check with that insurer.
func InsuranceVerifyFilter(insurer string) string {
	return SubjectInsuranceVerify + "." + insurer + ".*"
}

// DispatchRequestSubject is the subject of the dispatch job of one request.
func DispatchRequestSubject(requestID string) string { return SubjectDispatchRequest + "." + requestID }

// DispatchRequestFilter is the filter of the dispatch consumer.
const DispatchRequestFilter = SubjectDispatchRequest + ".*"

// EventSubject is the broker subject an event of the given type travels on.
func EventSubject(eventType string) string { return "events." + eventType }

// Message is one outbox row: an opaque payload bound for a subject. ID is
// unique and becomes the broker's Nats-Msg-Id, so re-publishing a row is
// harmless.
type Message struct {
	ID        string
	Subject   string
	Payload   []byte
	CreatedAt time.Time
	// Seq is the row's position in insert order, set when read from a
	// store; zero on a message not yet stored.
	Seq int64
}

// Publication is what the broker said of one message a relay published:
// where it stored it, or, for one it did not confirm, how long no relay
// should try it again.
type Publication struct {
	// Stream and StreamSeq are where the broker holds the message (a
	// duplicate: the copy it already had); empty and zero when the broker
	// did not confirm it.
	Stream    string
	StreamSeq uint64
	// RetryAfter, for an unconfirmed message, holds it back from every
	// relay for that long (a stream at its limit), so that the rows behind
	// it go out meanwhile; zero lets the next round take it.
	RetryAfter time.Duration
}

// Confirmed reports whether the broker stored the message.
func (p Publication) Confirmed() bool { return p.StreamSeq > 0 }

// Published is a message the broker confirmed, as the relay's republish
// window keeps it: what to publish again if the broker loses its tail.
type Published struct {
	Message
	Stream    string
	StreamSeq uint64
}

// Receipt names one message as processed by one consumer. A store records
// it in the same transaction as the message's effect, under a unique
// constraint, so that a redelivered message changes nothing twice.
type Receipt struct {
	Consumer  string
	MessageID string
}

// ErrAlreadyProcessed: the receipt was recorded before; the effect has
// been applied and the caller should acknowledge the message.
var ErrAlreadyProcessed = errors.New("message already processed")

// Actor is who caused a change, as recorded in an envelope.
type Actor struct {
	ID   string        `json:"id,omitempty"`
	Role identity.Role `json:"role,omitempty"`
}

// ActorOf turns a principal into the actor of an envelope.
func ActorOf(p identity.Principal) Actor { return Actor{ID: p.UserID, Role: p.Role} }

// SystemActor marks changes made by Yolda itself (workers, sweeper).
var SystemActor = Actor{ID: "system", Role: ""}

// Envelope wraps every job and event payload. Its fields are documented in
// docs/events.md; add fields, never rename them.
type Envelope struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	Version    int       `json:"version"`
	OccurredAt time.Time `json:"occurred_at"`
	RequestID  string    `json:"request_id,omitempty"`
	// Seq is the request's version after the change the message
	// announces (a job: the version it was committed at). Versions
	// advance by one with every stored change of a request, in the
	// transaction of the change, so a consumer orders a request's
	// messages by Seq and drops those older than what it has applied
	// (see Fresh). Zero when the message names no version.
	Seq   int             `json:"seq,omitempty"`
	Actor Actor           `json:"actor"`
	Data  json.RawMessage `json:"data"`
}

// NewMessage builds an outbox message bound for subject, carrying head
// with data. NewMessage sets head's ID and Version; the envelope id and the
// message id are the same, so a consumer can use either to make itself
// idempotent. head.OccurredAt is stored in UTC.
func NewMessage(subject string, head Envelope, data any) (Message, error) {
	head.ID = id.New("msg", head.OccurredAt)
	head.Version = EnvelopeVersion
	head.OccurredAt = head.OccurredAt.UTC()
	// Encoded in one pass: marshalling data first and embedding it as a
	// RawMessage would make encoding/json validate and compact it again.
	env := struct {
		Envelope
		Data any `json:"data"`
	}{Envelope: head, Data: data}
	payload, err := json.Marshal(env)
	if err != nil {
		return Message{}, fmt.Errorf("encode %s envelope: %w", head.Type, err)
	}
	return Message{ID: head.ID, Subject: subject, Payload: payload, CreatedAt: head.OccurredAt}, nil
}

// New is NewMessage for a message that names no request version (Seq 0).
func New(subject, msgType string, at time.Time, requestID string, actor Actor, data any) (Message, error) {
	return NewMessage(subject, Envelope{Type: msgType, OccurredAt: at, RequestID: requestID, Actor: actor}, data)
}
