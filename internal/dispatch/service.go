package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

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
// deadline, the request is dispatching and the driver is on no other job.
// An offer that lost (the driver busy, the deadline passed) is ended
// and its request moves on to the next candidate.
func (s *Service) Accept(ctx context.Context, who identity.Principal, offerID string) (intake.Request, error) {
	if who.Role != identity.Driver {
		return intake.Request{}, intake.ErrForbidden
	}
	if !id.Valid("ofr", offerID) {
		return intake.Request{}, ErrOfferNotFound
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	r, err := s.store.Assign(ctx, AssignTarget{OfferID: offerID}, func(a *Assigning) (intake.Change, error) {
		o := a.Offer
		switch {
		case o.DriverID != who.UserID:
			return intake.Change{}, ErrOfferNotFound
		case o.Status != OfferOpen:
			return intake.Change{}, fmt.Errorf("accept an offer that is %s: %w", o.Status, ErrOfferClosed)
		case !now.Before(o.ExpiresAt):
			return intake.Change{}, fmt.Errorf("accept an offer that expired at %s: %w", o.ExpiresAt.Format(time.RFC3339), ErrOfferExpired)
		case a.Request.Status != intake.StatusDispatching:
			return intake.Change{}, fmt.Errorf("accept an offer for a request that is %s: %w", a.Request.Status, ErrOfferClosed)
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
	switch {
	case err == nil:
		s.committed()
		s.refresh(ctx, who.UserID)
		return r, nil
	case errors.Is(err, ErrDriverBusy):
		// The driver took another job since the offer was made: the
		// request goes on to the next candidate.
		s.release(ctx, offerID, "the driver is on another job")
	case errors.Is(err, ErrOfferExpired):
		s.expired()
	}
	return intake.Request{}, err
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
			return nil, fmt.Errorf("decline an offer that is %s: %w", o.Status, ErrOfferClosed)
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
	eta := s.manualETA(ctx, requestID, driverID)
	now := s.now().UTC().Truncate(time.Microsecond)
	r, err := s.store.Assign(ctx, AssignTarget{RequestID: requestID, DriverID: driverID}, func(a *Assigning) (intake.Change, error) {
		seconds := 0
		if eta != nil {
			seconds = eta(a.Request.Location)
		}
		return s.take(a, who, seconds, "assigned by "+who.Username, now)
	})
	if errors.Is(err, ErrUnknownDriver) {
		return intake.Request{}, validate.Errors{{Field: "driver_id", Message: "is not a driver"}}
	}
	if err != nil {
		return intake.Request{}, err
	}
	s.committed()
	s.refresh(ctx, driverID)
	held, err := s.store.OpenOffers(ctx, driverID, time.Time{})
	if err != nil {
		s.log.Warn("driver's other offers not read; they will expire", "driver_id", driverID, "err", err)
	}
	for _, o := range held {
		s.release(ctx, o.OfferID, "the driver was assigned another job by hand")
	}
	return r, nil
}

// manualETA returns, if the driver's position is known, how to estimate
// its drive to a request's location; nil otherwise (the ETA is then 0).
func (s *Service) manualETA(ctx context.Context, requestID, driverID string) func(intake.Location) int {
	entries, err := s.positions.Lookup(ctx, []string{driverID})
	if err != nil {
		s.log.Warn("driver position unknown for a manual assignment", "request_id", requestID, "driver_id", driverID, "err", err)
		return nil
	}
	if len(entries) == 0 || !entries[0].HasFix {
		return nil
	}
	pos := entries[0].Fix.Point()
	return func(loc intake.Location) int {
		dst := make([]float64, 1)
		if err := s.eta.Matrix(ctx, []geo.Point{pos}, []geo.Point{{Lat: loc.Lat, Lng: loc.Lng}}, dst); err != nil {
			return 0
		}
		return int(math.Round(dst[0]))
	}
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
		s.refresh(ctx, who.UserID)
	}
	return r, nil
}

// refresh tells the fleet a driver's state changed. The database is right
// already; a failure leaves the index stale until the next refresh, which
// the database's checks make safe.
func (s *Service) refresh(ctx context.Context, driverID string) {
	if _, err := s.fleet.Refresh(ctx, driverID); err != nil {
		s.log.Warn("position index not refreshed", "driver_id", driverID, "err", err)
	}
}
