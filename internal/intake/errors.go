package intake

import "errors"

var (
	// ErrNotFound: no such request, or not one the caller may see. The two
	// are deliberately indistinguishable.
	ErrNotFound = errors.New("request not found")
	// ErrConflict: the state machine forbids the change asked for.
	ErrConflict = errors.New("transition not allowed")
	// ErrIdempotencyMismatch: an Idempotency-Key was reused with another body.
	ErrIdempotencyMismatch = errors.New("idempotency key reused with a different body")
	// ErrForbidden: the caller's role may not do this at all.
	ErrForbidden = errors.New("not allowed for this role")
	// ErrOverloaded: intake's commit queue is full; the caller should retry.
	ErrOverloaded = errors.New("intake overloaded")
	// ErrClosed: intake is shutting down and takes no new work.
	ErrClosed = errors.New("intake closed")
	// ErrRowRejected is wrapped by a store error that one row of a
	// creation batch caused (a constraint it violates, a value the column
	// refuses): the batch without that row may commit. Any other store
	// error (a timeout, a lost connection) is the database's, and leaves it
	// unknown whether the batch committed.
	ErrRowRejected = errors.New("a row was refused")
	// ErrVersion: a change did not advance the request's version by
	// exactly one (Request.Advance); the store committed nothing.
	ErrVersion = errors.New("a change must advance the request's version by one")
)
