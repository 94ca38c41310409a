package intake

import (
	"context"
	"time"

	"github.com/yolda/yolda/internal/outbox"
)

// Store keeps requests. Implementations live in internal/store/...; all of
// them pass internal/store/storetest.
type Store interface {
	// CreateRequests commits every creation of the batch in one
	// transaction: each request, its timeline and its outbox messages. A
	// creation whose idempotency key is already taken is not inserted: the
	// store sets its ReplayOf (same fingerprint) or its Err
	// (ErrIdempotencyMismatch) and carries on with the rest. Two creations
	// with the same key in one batch behave as if they came one after the
	// other. An error that one creation caused wraps ErrRowRejected, and
	// then nothing of the batch was committed; after any other error (a
	// lost connection, perhaps during the commit) the batch may or may not
	// have committed.
	CreateRequests(ctx context.Context, batch []*Creation) error

	// Request returns one request with its timeline, or ErrNotFound.
	Request(ctx context.Context, id string) (Request, error)

	// Requests returns up to f.Limit requests matching f, newest first,
	// each with its timeline.
	Requests(ctx context.Context, f Filter) ([]Request, error)

	// UpdateRequest reads the request, lets fn change it, and commits the
	// change, its timeline entry and its outbox messages in one
	// transaction. fn sees the committed state and may run more than once
	// if another writer got there first; its error aborts the update and is
	// returned as is. A missing request is ErrNotFound. fn must advance
	// the request's version by exactly one (Request.Advance) or the store
	// commits nothing and returns ErrVersion; the stored row is written only
	// over the version fn was given.
	UpdateRequest(ctx context.Context, id string, fn func(*Request) (Change, error)) (Request, error)

	// UpdateRequests applies a batch of updates in one transaction, in
	// order; updates of one request apply one after the other, each on
	// the state the one before left. An update that fails alone (its Err:
	// not found, already processed, Apply's error) leaves nothing behind
	// and does not stop the others. A non-nil error means nothing of the
	// batch was committed (a database error); the caller may then try the
	// updates one by one to find the one that cannot be applied. Rows are
	// locked in id order, so concurrent batches cannot deadlock.
	UpdateRequests(ctx context.Context, batch []*Update) error
}

// Creation is one request to insert, with what the store reports back.
type Creation struct {
	Request Request
	// IdempotencyKey, when not empty, is unique per Request.OwnerID.
	IdempotencyKey string
	// Fingerprint identifies the body sent with the key.
	Fingerprint string
	Outbox      []outbox.Message

	// ReplayOf is set by the store when the key was used before with the
	// same fingerprint: the id of the request that call created.
	ReplayOf string
	// Err is set by the store when this creation alone was refused.
	Err error
}

// Change is what an update leaves behind besides the new request state.
type Change struct {
	// Timeline, if set, is appended to the request's timeline.
	Timeline *TimelineEntry
	// Outbox messages are committed with the change.
	Outbox []outbox.Message
	// Receipt, if set, is recorded with the change; if it was recorded
	// before, the store commits nothing and returns
	// outbox.ErrAlreadyProcessed. This is how a consumer applies a message
	// once however often it is delivered.
	Receipt *outbox.Receipt
}

// Filter selects requests for a list. Zero fields match everything.
type Filter struct {
	// ID selects one request: how Get reads through the same scope as List.
	ID          string
	OwnerID     string
	DriverID    string
	Statuses    []Status
	Province    string
	Insurer     string
	ServiceType ServiceType
	From, To    time.Time // created_at in [From, To)
	// Before is a request id: only older requests are returned. It is how
	// the cursor works; ids are time-ordered.
	Before string
	Limit  int
}
