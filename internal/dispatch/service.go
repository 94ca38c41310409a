package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/geo"
	"github.com/yolda/yolda/internal/id"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
	"github.com/yolda/yolda/internal/validate"
)

// ServiceOptions tune a Service. Zero fields take defaults.
type ServiceOptions struct {
	Now func() time.Time
	// Committed is called after a transaction that wrote outbox messages.
	Committed func()
	// Expired, if set, is called when an accept found its offer past the
	// deadline, so that the expirer moves the request on at once.
	Expired func()
	Logger  *slog.Logger
}

// Service is the dispatch use cases people call: a driver's offers,
// accept and decline, an operator's manual assignment, and a driver's job
// progress.
type Service struct {
	store     Store
	requests  Requests
	fleet     Fleet
	positions Positions
	eta       geo.Estimator
	now       func() time.Time
	committed func()
	expired   func()
	log       *slog.Logger
}

// NewService returns the use cases over their ports. eta estimates a
// manual assignment's drive (nil: geo.DefaultRoadETA).
func NewService(store Store, requests Requests, fleet Fleet, positions Positions, eta geo.Estimator, o ServiceOptions) *Service {
	if eta == nil {
		eta = geo.DefaultRoadETA
	}
	s := &Service{store: store, requests: requests, fleet: fleet, positions: positions, eta: eta,
		now: o.Now, committed: o.Committed, expired: o.Expired, log: o.Logger}
	if s.now == nil {
		s.now = time.Now
	}
	if s.committed == nil {
		s.committed = func() {}
	}
	if s.expired == nil {
		s.expired = func() {}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// Offers lists the offers open to the calling driver.
func (s *Service) Offers(ctx context.Context, who identity.Principal) ([]OfferView, error) {
	if who.Role != identity.Driver {
		return nil, intake.ErrForbidden
	}
	offers, err := s.store.OpenOffers(ctx, who.UserID, s.now())
	if err != nil {
		return nil, fmt.Errorf("list offers: %w", err)
	}
	return offers, nil
}

// Accept assigns the offer's request to the calling driver, in one
// transaction that fails unless the offer is open and not past its
// deadline, the request is dispatching and the driver is online and on no
// other job. An offer that lost (the driver busy or offline, the deadline
// passed) is ended and its request moves on to the next candidate. An
// accept of an offer whose request is the caller's already (accepted
// before, or assigned to it by hand) changes nothing and answers the
// request as it is.
func (s *Service) Accept(ctx context.Context, who identity.Principal, offerID string) (intake.Request, error) {
	if who.Role != identity.Driver {
		return intake.Request{}, intake.ErrForbidden
	}
	if !id.Valid("ofr", offerID) {
		return intake.Request{}, ErrOfferNotFound
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	var taken *intake.Request // set when the caller's accept had committed before
	r, err := s.store.Assign(ctx, AssignTarget{OfferID: offerID}, func(a *Assigning) (intake.Change, error) {
		o := a.Offer
		switch {
		case o.DriverID != who.UserID:
			return intake.Change{}, ErrOfferNotFound
		case o.Status != OfferOpen && a.Request.Assignment != nil && a.Request.Assignment.DriverID == who.UserID &&
			(o.Status == OfferAccepted || a.Request.Status.Active()):
			// A retry of an accept whose answer was lost, or an accept of
			// an offer withdrawn because an operator gave the driver the
			// job by hand: the driver has the job, and is told so rather
			// than that it went elsewhere.
			taken = a.Request
			return intake.Change{}, errAcceptedBefore
		case o.Status != OfferOpen:
			return intake.Change{}, fmt.Errorf("accept an offer that is %s: %w", o.Status, notOpen(o.Status))
		case !now.Before(o.ExpiresAt):
			return intake.Change{}, fmt.Errorf("accept an offer that expired at %s: %w", o.ExpiresAt.Format(time.RFC3339), ErrOfferExpired)
		case a.Request.Status != intake.StatusDispatching:
			return intake.Change{}, fmt.Errorf("accept an offer for a request that is %s: %w", a.Request.Status, ErrOfferClosed)
		case a.Driver.Availability != fleet.Online:
			// Going offline raced the accept and committed first.
			return intake.Change{}, ErrDriverOffline
		}
		change, err := s.take(a, who, o.ETASeconds, "", now)
		if err != nil {
			return intake.Change{}, err
		}
		o.close(OfferAccepted, now)
		ev, err := offerClosed(*o, outbox.ActorOf(who), "")
		if err != nil {
			return intake.Change{}, err
		}
		change.Outbox = append(change.Outbox, ev)
		return change, nil
	})
	fctx, cancel := followUp(ctx)
	defer cancel()
	switch {
	case err == nil:
		s.committed()
		s.refresh(fctx, who.UserID)
		return r, nil
	case errors.Is(err, errAcceptedBefore):
		return *taken, nil
	case errors.Is(err, ErrDriverBusy):
		// The driver took another job since the offer was made: the
		// request goes on to the next candidate.
		s.release(fctx, offerID, "the driver is on another job")
	case errors.Is(err, ErrDriverOffline):
		s.release(fctx, offerID, reasonOffline)
	case errors.Is(err, ErrOfferExpired):
		s.expired()
	}
	return intake.Request{}, err
}

// errAcceptedBefore aborts an accept's transaction that has nothing to
// do: the caller has the job already.
var errAcceptedBefore = errors.New("the driver has the job already")

// followUpTimeout bounds what a use case does after its commit on the
// caller's behalf: refreshing the position index, withdrawing offers that
// can no longer be taken.
const followUpTimeout = 5 * time.Second

// followUp is the context of that work: ctx's values without its
// cancellation. The caller's context ends when its client hangs up, which
// may be the moment the commit's answer is on its way; work skipped then
// would leave a freed driver busy in the index (never offered a job
// again) or an offer open until its deadline.
func followUp(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), followUpTimeout)
}

// notOpen is the error of answering an offer that has ended: expired
// (the expirer got there first) or closed otherwise.
func notOpen(st OfferStatus) error {
	if st == OfferExpired {
		return ErrOfferExpired
	}
	return ErrOfferClosed
}

// take is an assignment's change of the request: the driver on it and the
// move to assigned.
func (s *Service) take(a *Assigning, who identity.Principal, eta int, reason string, now time.Time) (intake.Change, error) {
	r := a.Request
	if !intake.CanMove(r.Status, intake.StatusAssigned) {
		return intake.Change{}, fmt.Errorf("assign a request that is %s: %w", r.Status, intake.ErrConflict)
	}
	r.Advance(now)
	r.Assignment = &intake.Assignment{DriverID: a.Driver.ID, DriverName: a.Driver.Name, VehiclePlate: a.Driver.VehiclePlate,
		AssignedAt: now, ETASeconds: eta}
	return intake.Transition(r, who, intake.StatusAssigned, reason, now)
}

// release withdraws an offer that can no longer be accepted and commits
// its request's next dispatch job. A failure is logged, not returned: the
// expirer ends the offer at its deadline all the same.
func (s *Service) release(ctx context.Context, offerID, reason string) {
	now := s.now()
	_, err := s.store.CloseOffer(ctx, offerID, func(o *Offer, r *intake.Request) ([]outbox.Message, error) {
		if o.Status != OfferOpen {
			return nil, ErrOfferClosed
		}
		o.close(OfferWithdrawn, now)
		return nextRound(*o, *r, outbox.SystemActor, reason, now)
	})
	switch {
	case err == nil:
		s.committed()
	case !errors.Is(err, ErrOfferClosed):
		s.log.Warn("offer not withdrawn; it will expire", "offer_id", offerID, "err", err)
	}
}

// nextRound is what an offer's end leaves behind when it did not assign:
// the offer.closed event and, if the request is still dispatching, the
// job that makes the next offer.
func nextRound(o Offer, r intake.Request, actor outbox.Actor, reason string, now time.Time) ([]outbox.Message, error) {
	ev, err := offerClosed(o, actor, reason)
	if err != nil {
		return nil, err
	}
	msgs := []outbox.Message{ev}
	if r.Status == intake.StatusDispatching {
		job, err := intake.NewDispatchJob(r, now, actor)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, job)
	}
	return msgs, nil
}

// Decline ends the calling driver's open offer; the request moves on to
// the next candidate.
func (s *Service) Decline(ctx context.Context, who identity.Principal, offerID string) error {
	if who.Role != identity.Driver {
		return intake.ErrForbidden
	}
	if !id.Valid("ofr", offerID) {
		return ErrOfferNotFound
	}
	now := s.now()
	_, err := s.store.CloseOffer(ctx, offerID, func(o *Offer, r *intake.Request) ([]outbox.Message, error) {
		if o.DriverID != who.UserID {
			return nil, ErrOfferNotFound
		}
		if o.Status != OfferOpen {
			return nil, fmt.Errorf("decline an offer that is %s: %w", o.Status, notOpen(o.Status))
		}
		o.close(OfferDeclined, now)
		return nextRound(*o, *r, outbox.ActorOf(who), "declined", now)
	})
	if err != nil {
		return err
	}
	s.committed()
	return nil
}

// Assign is an operator giving a request to a driver by hand: from
// dispatching or unfulfilled, to a driver on no other job (ErrDriverBusy),
// under the same transaction rules as an accept. An open offer of the
// request is withdrawn with the move; one the driver held for another
// request is withdrawn after it, and that request moves on.
func (s *Service) Assign(ctx context.Context, who identity.Principal, requestID, driverID string) (intake.Request, error) {
	if !who.Role.Staff() {
		return intake.Request{}, intake.ErrForbidden
	}
	if !id.Valid("usr", driverID) {
		return intake.Request{}, validate.Errors{{Field: "driver_id", Message: "is not a driver id"}}
	}
	if !id.Valid("req", requestID) {
		return intake.Request{}, intake.ErrNotFound
	}
	pos, err := s.position(ctx, driverID)
	if err != nil {
		return intake.Request{}, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	r, err := s.store.Assign(ctx, AssignTarget{RequestID: requestID, DriverID: driverID}, func(a *Assigning) (intake.Change, error) {
		if err := s.assignable(a, pos); err != nil {
			return intake.Change{}, err
		}
		return s.take(a, who, s.manualETA(ctx, pos, a.Request.Location), "assigned by "+who.Username, now)
	})
	if errors.Is(err, ErrUnknownDriver) {
		return intake.Request{}, validate.Errors{{Field: "driver_id", Message: "is not a driver"}}
	}
	if err != nil {
		return intake.Request{}, err
	}
	s.committed()
	fctx, cancel := followUp(ctx)
	defer cancel()
	s.refresh(fctx, driverID)
	s.releaseHeld(fctx, driverID, "the driver was assigned another job by hand")
	return r, nil
}

// reasonOffline is why the offers of a driver who went offline end.
const reasonOffline = "the driver went offline"

// DriverOffline withdraws the offers held by a driver who went offline,
// so that their requests move on now rather than at the deadline. It runs
// after the change has committed (fleet.Options.WentOffline): no offer
// is made to the driver after that (the store's checks), and an accept
// racing it is refused (Accept, under the driver's lock). If it does not
// get to run, the offers expire at their deadline all the same.
func (s *Service) DriverOffline(ctx context.Context, driverID string) {
	fctx, cancel := followUp(ctx)
	defer cancel()
	s.releaseHeld(fctx, driverID, reasonOffline)
}

// releaseHeld withdraws every offer the driver holds (release).
func (s *Service) releaseHeld(ctx context.Context, driverID, reason string) {
	held, err := s.store.OpenOffers(ctx, driverID, time.Time{})
	if err != nil {
		s.log.Warn("driver's offers not read; they will expire", "driver_id", driverID, "err", err)
	}
	for _, o := range held {
		s.release(ctx, o.OfferID, reason)
	}
}

// position is what the index knows of a driver a manual assignment names
// (nil if nothing).
func (s *Service) position(ctx context.Context, driverID string) (*fleet.Entry, error) {
	entries, err := s.positions.Lookup(ctx, []string{driverID})
	if err != nil {
		return nil, fmt.Errorf("look up the driver's position: %w", err)
	}
	if len(entries) == 0 {
		return nil, nil
	}
	return &entries[0], nil
}

// assignable refuses a manual assignment to a driver who could not take
// the job: offline, unfit for the service, or without a recent position
// (a driver whose device went quiet would not see it). The driver's state
// is as locked by the assignment; its position is the index's.
func (s *Service) assignable(a *Assigning, pos *fleet.Entry) error {
	d := a.Driver
	var msg string
	switch {
	case d.Availability != fleet.Online:
		msg = "is offline"
	case !fleet.CanServe(d.VehicleKind, d.Capabilities, a.Request.ServiceType):
		msg = "cannot do " + string(a.Request.ServiceType)
	case pos == nil || !pos.HasFix || !s.fleet.Fresh(pos.Fix):
		msg = "has no recent position"
	default:
		return nil
	}
	return validate.Errors{{Field: "driver_id", Message: msg}}
}

// manualETA estimates the drive from the driver's position to loc, in
// seconds (0 if it cannot).
func (s *Service) manualETA(ctx context.Context, pos *fleet.Entry, loc intake.Location) int {
	dst := make([]float64, 1)
	if err := s.eta.Matrix(ctx, []geo.Point{pos.Fix.Point()}, []geo.Point{{Lat: loc.Lat, Lng: loc.Lng}}, dst); err != nil {
		return 0
	}
	return int(math.Round(dst[0]))
}

// progressSteps are what a driver may report.
var progressSteps = []intake.Status{intake.StatusEnRoute, intake.StatusArrived, intake.StatusInService, intake.StatusCompleted}

// Progress records a step of the job by its driver: en_route, arrived,
// in_service, completed, each as the state machine allows (intake.ErrConflict
// otherwise). A request not assigned to the caller is intake.ErrNotFound.
// Completion frees the driver (in the database, with the change).
func (s *Service) Progress(ctx context.Context, who identity.Principal, requestID string, to intake.Status) (intake.Request, error) {
	var errs validate.Errors
	validate.OneOf(&errs, "status", to, progressSteps)
	if err := errs.Err(); err != nil {
		return intake.Request{}, err
	}
	if who.Role != identity.Driver {
		return intake.Request{}, intake.ErrForbidden
	}
	if !id.Valid("req", requestID) {
		return intake.Request{}, intake.ErrNotFound
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	r, err := s.requests.UpdateRequest(ctx, requestID, func(r *intake.Request) (intake.Change, error) {
		if r.Assignment == nil || r.Assignment.DriverID != who.UserID {
			return intake.Change{}, intake.ErrNotFound
		}
		if !intake.CanMove(r.Status, to) {
			return intake.Change{}, fmt.Errorf("report %s on a job that is %s: %w", to, r.Status, intake.ErrConflict)
		}
		r.Advance(now)
		return intake.Transition(r, who, to, "", now)
	})
	if err != nil {
		return intake.Request{}, err
	}
	s.committed()
	if !r.Status.Active() {
		fctx, cancel := followUp(ctx)
		defer cancel()
		s.refresh(fctx, who.UserID)
	}
	return r, nil
}

// refresh tells the fleet a driver's state changed. The database is right
// already. A failure leaves the index stale until the next refresh or the
// dispatch role's reconciliation (fleet.Service.Reconcile): a driver
// wrongly free there is refused by the database's checks, one wrongly busy
// is passed over until then.
func (s *Service) refresh(ctx context.Context, driverID string) {
	if _, err := s.fleet.Refresh(ctx, driverID); err != nil {
		s.log.Warn("position index not refreshed", "driver_id", driverID, "err", err)
	}
}
