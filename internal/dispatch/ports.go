package dispatch

import (
	"context"
	"time"

	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
)

// Fleet is what dispatch needs of the drivers' side (fleet.Service is
// one). Its answers come from the position index, a cache: the database
// has the last word (Store checks that a driver is free when it commits an
// offer or an assignment).
type Fleet interface {
	// Candidates returns the drivers within the radius who are online,
	// free, able to do the service and fresh, by ETA, at most q.Limit.
	Candidates(ctx context.Context, q fleet.CandidateQuery) ([]fleet.Ranked, error)
	// Refresh tells the fleet that a commit made the driver busy or free:
	// the index reloads the driver's state from the database.
	Refresh(ctx context.Context, driverID string) (fleet.Driver, error)
}

// Positions looks up drivers' last positions (fleet.Index is one).
type Positions interface {
	Lookup(ctx context.Context, ids []string) ([]fleet.Entry, error)
}

// Requests is the one request update dispatch needs of intake's store
// (job progress changes nothing but the request).
type Requests interface {
	UpdateRequest(ctx context.Context, id string, fn func(*intake.Request) (intake.Change, error)) (intake.Request, error)
}

// Snapshot is what dispatch decides on: a request with its timeline, and
// every offer made for it, oldest first.
type Snapshot struct {
	Request intake.Request
	Offers  []Offer
}

// Decision is one effect of the worker for one request, made on a
// snapshot. The store commits it only if the snapshot still holds under
// the request's lock: the request at Version and with Offers offers.
// Otherwise it sets Err to ErrStale and commits nothing of it.
type Decision struct {
	RequestID string
	Version   int
	Offers    int
	// Offer, when set, is an open offer to insert. Its driver must be
	// online, on no job and hold no open offer, by the database's truth;
	// if not, Err is ErrDriverTaken.
	Offer *Offer
	// Request, when set, is the request's new state (status and
	// updated_at; the store sets its version to Version+1).
	Request *intake.Request
	// Change holds the timeline entry (with Request), the outbox messages
	// and the receipt. A receipt recorded before makes Err
	// outbox.ErrAlreadyProcessed.
	Change intake.Change

	// Err is set by the store: nil when committed.
	Err error
}

// Driver is the driver an assignment names.
type Driver struct {
	ID           string
	Name         string
	VehiclePlate string
}

// AssignTarget names what an assignment takes: an offer (a driver's
// accept), or a request and a driver (an operator's hand).
type AssignTarget struct {
	OfferID   string
	RequestID string
	DriverID  string
}

// Assigning is what an assignment function sees, locked: the request, the
// offer being accepted (nil for a manual assignment) and the driver.
type Assigning struct {
	Request *intake.Request
	Offer   *Offer
	Driver  Driver
}

// Store keeps offers and assignments. Implementations live in
// internal/store/...; all of them pass storetest.RunDispatch.
type Store interface {
	// Snapshots reads each request (with its timeline) and its offers;
	// ids that name no request are left out.
	Snapshots(ctx context.Context, requestIDs []string) ([]Snapshot, error)
	// FreeDrivers returns those of driverIDs who are online, on no job and
	// hold no open offer now.
	FreeDrivers(ctx context.Context, driverIDs []string) ([]string, error)
	// CommitDecisions commits every decision that still holds in one
	// transaction and sets each one's Err. A non-nil error means nothing
	// was committed.
	CommitDecisions(ctx context.Context, ds []*Decision) error

	// Assign locks the request (and the offer), lets fn change the
	// request (status, assignment) and the offer (status), and commits in
	// one transaction: the offer's new status, the request, its timeline
	// entry and outbox messages, and the driver made busy with this
	// request, only if it was free (ErrDriverBusy otherwise, also when the
	// database's one-open-job-per-driver index refuses). An unknown offer is
	// ErrOfferNotFound, an unknown request intake.ErrNotFound, a driver id
	// that names no driver ErrUnknownDriver. fn's error aborts and is
	// returned as is.
	Assign(ctx context.Context, t AssignTarget, fn func(*Assigning) (intake.Change, error)) (intake.Request, error)
	// CloseOffer locks the offer's request and the offer, lets fn end the
	// offer (its Status and DecidedAt) and commits that with fn's outbox
	// messages. fn sees the request without its timeline.
	CloseOffer(ctx context.Context, offerID string, fn func(o *Offer, r *intake.Request) ([]outbox.Message, error)) (Offer, error)
	// ExpireOffers ends up to limit open offers whose deadline is at or
	// before now, in one transaction: fn sets each one's status and gives
	// its outbox messages. Offers another process is expiring are skipped,
	// so expirers may run in many processes. fn sees each request without
	// its timeline.
	ExpireOffers(ctx context.Context, now time.Time, limit int, fn func(o *Offer, r *intake.Request) ([]outbox.Message, error)) ([]Offer, error)
	// OpenOffers lists the offers open to a driver whose deadline is after
	// now, oldest first.
	OpenOffers(ctx context.Context, driverID string, now time.Time) ([]OfferView, error)
	// OfferedTo reports whether the request has an open offer to the driver.
	OfferedTo(ctx context.Context, requestID, driverID string) (bool, error)
}
