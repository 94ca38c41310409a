package intake

import (
	"encoding/json"
	"slices"

	"github.com/yolda/yolda/internal/outbox"
)

// Update is one change to one request, applied together with others in one
// transaction by Store.UpdateRequests. It is how consumers write: many
// messages' effects share a commit, each with its own receipt.
type Update struct {
	RequestID string
	// Receipt, if set, makes the update a consumer's, applied once however
	// often its message comes: if the receipt was recorded before, Apply
	// does not run and Err is outbox.ErrAlreadyProcessed; otherwise it is
	// recorded with the change.
	Receipt *outbox.Receipt
	// Apply changes the request, as UpdateRequest's fn does, and returns
	// what the change leaves behind. It runs on the state committed so far
	// (and on the updates of the same request earlier in the batch). Its
	// error is the update's Err and leaves nothing behind. It must leave
	// Change.Receipt nil: the update's receipt is Receipt.
	Apply func(*Request) (Change, error)

	// Result is set by the store: the request as committed, when Err is nil.
	Result Request
	// Err is set by the store when this update alone changed nothing:
	// ErrNotFound, outbox.ErrAlreadyProcessed or Apply's error.
	Err error
}

// Clone returns a deep copy of r: changing one never changes the other.
func (r Request) Clone() Request {
	c := r
	if r.Destination != nil {
		d := *r.Destination
		c.Destination = &d
	}
	c.Insurance.CheckedAt = clonePtr(r.Insurance.CheckedAt)
	c.Insurance.Reason = clonePtr(r.Insurance.Reason)
	c.Insurance.Reference = clonePtr(r.Insurance.Reference)
	if r.Insurance.Coverage != nil {
		c.Insurance.Coverage = json.RawMessage(slices.Clone([]byte(r.Insurance.Coverage)))
	}
	c.Insurance.Flags = slices.Clone(r.Insurance.Flags)
	if r.Assignment != nil {
		a := *r.Assignment
		a.DriverLocation = clonePtr(r.Assignment.DriverLocation)
		c.Assignment = &a
	}
	c.Timeline = slices.Clone(r.Timeline)
	return c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
