package intake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/yolda/yolda/internal/geo"
	"github.com/yolda/yolda/internal/id"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/outbox"
	"github.com/yolda/yolda/internal/validate"
)

// Flags an insurance outcome can raise on a request for operators.
const (
	FlagServiceNotCovered      = "service_not_covered"
	FlagTowBeyondCover         = "tow_beyond_cover"
	FlagRejectedAfterDispatch  = "rejected_after_dispatch"
	EventRequestInsuranceCheck = "request.insurance_checked"
)

// ErrAlreadyDecided: the insurance question was settled before (by the
// insurer or an operator); the new outcome changes nothing.
var ErrAlreadyDecided = errors.New("insurance already decided")

// Coverage is what a policy covers, as the insurer said.
type Coverage struct {
	MaxTowKm int      `json:"max_tow_km,omitempty"`
	Services []string `json:"services,omitempty"`
}

// MaxCoverageBytes bounds the insurer's coverage document that a request
// keeps: a larger one (or one that is not JSON) is not stored, though its
// terms still apply.
const MaxCoverageBytes = 16 << 10

// InsuranceOutcome is the settled answer to a request's insurance check.
type InsuranceOutcome struct {
	Status    InsuranceStatus
	Reference string
	Reason    string
	// Coverage is the insurer's coverage document, byte for byte as it
	// came (up to MaxCoverageBytes); Terms is what Yolda understood of it
	// (nil when not covered or unknown). They are kept apart so that the
	// record shows what the insurer said, not Yolda's reading of it.
	Coverage json.RawMessage
	Terms    *Coverage
	// Outbox holds messages the caller commits with the outcome, in its
	// transaction, and only if the outcome is recorded: the insurance
	// role's insurance.call event, so that a call is recorded exactly once
	// with what it decided.
	Outbox []outbox.Message
}

// InsuranceChecked is the data of a request.insurance_checked event:
// operators watch it for manual_review and flags.
type InsuranceChecked struct {
	Status    InsuranceStatus `json:"status"`
	Reference string          `json:"reference,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	Flags     []string        `json:"flags,omitempty"`
	At        time.Time       `json:"at"`
	OwnerID   string          `json:"owner_id"`
}

// coverageFlags applies the policy's terms to the request.
func coverageFlags(r Request, terms *Coverage) []string {
	if terms == nil {
		return nil
	}
	var flags []string
	if len(terms.Services) > 0 && !slices.Contains(terms.Services, string(r.ServiceType)) {
		flags = append(flags, FlagServiceNotCovered)
	}
	if r.ServiceType == Tow && r.Destination != nil && terms.MaxTowKm > 0 {
		if km := geo.DistanceKm(r.Location.Lat, r.Location.Lng, r.Destination.Lat, r.Destination.Lng); km > float64(terms.MaxTowKm) {
			flags = append(flags, FlagTowBeyondCover)
		}
	}
	return flags
}

// RecordInsurance settles a request's insurance question and moves the
// request on, in one transaction with its events:
//
//   - approved or waived: a request awaiting insurance starts dispatching
//     (and its dispatch job is committed);
//   - rejected: a request awaiting insurance (or not yet dispatched) is
//     rejected; one already dispatching keeps its driver and is flagged
//     for operators instead;
//   - manual_review: nothing moves; operators decide.
//
// A receipt makes the call idempotent for a consumer (a repeat returns
// outbox.ErrAlreadyProcessed). An outcome for a question already settled
// (approved, rejected or waived) returns ErrAlreadyDecided; manual_review
// may still be settled later. Outcomes recorded at the same moment share a
// transaction (see Update).
func (s *Service) RecordInsurance(ctx context.Context, who identity.Principal, requestID string, o InsuranceOutcome, receipt *outbox.Receipt) (Request, error) {
	u := s.InsuranceUpdate(who, requestID, o, receipt)
	if err := s.Update(ctx, u); err != nil {
		return Request{}, err
	}
	return u.Result, u.Err
}

// InsuranceUpdate is RecordInsurance as an Update, for a consumer that
// applies a batch of outcomes itself (UpdateBatch).
func (s *Service) InsuranceUpdate(who identity.Principal, requestID string, o InsuranceOutcome, receipt *outbox.Receipt) *Update {
	return &Update{RequestID: requestID, Receipt: receipt, Apply: func(r *Request) (Change, error) {
		return s.applyInsurance(r, who, o)
	}}
}

// applyInsurance changes r as the outcome o says; see RecordInsurance.
func (s *Service) applyInsurance(r *Request, who identity.Principal, o InsuranceOutcome) (Change, error) {
	switch r.Insurance.Status {
	case InsurancePending, InsuranceManualReview:
	default:
		return Change{}, ErrAlreadyDecided
	}
	if o.Status == InsuranceManualReview && r.Insurance.Status == InsuranceManualReview {
		return Change{}, ErrAlreadyDecided
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	r.Advance(now)
	r.Insurance.Status = o.Status
	r.Insurance.CheckedAt = &now
	r.Insurance.Reference = optional(o.Reference)
	r.Insurance.Reason = optional(o.Reason)
	if len(o.Coverage) > 0 && len(o.Coverage) <= MaxCoverageBytes && json.Valid(o.Coverage) {
		r.Insurance.Coverage = o.Coverage
	}
	flags := coverageFlags(*r, o.Terms)
	var change Change
	actor := outbox.ActorOf(who)
	switch o.Status {
	case InsuranceApproved, InsuranceWaived:
		if r.Status == StatusAwaitingInsurance {
			moved, err := s.move(r, who, StatusDispatching, "insurance "+string(o.Status), now)
			if err != nil {
				return Change{}, err
			}
			jobs, err := s.jobs(*r, now, actor)
			if err != nil {
				return Change{}, err
			}
			change.Timeline, change.Outbox = moved.Timeline, append(moved.Outbox, jobs...)
		}
	case InsuranceRejected:
		switch {
		case r.Status == StatusReceived || r.Status == StatusAwaitingInsurance:
			moved, err := s.move(r, who, StatusRejected, o.Reason, now)
			if err != nil {
				return Change{}, err
			}
			change.Timeline, change.Outbox = moved.Timeline, moved.Outbox
		case !r.Status.Final():
			flags = append(flags, FlagRejectedAfterDispatch)
		}
	}
	r.Insurance.Flags = mergeFlags(r.Insurance.Flags, flags)
	ev, err := outbox.NewMessage(outbox.EventSubject(EventRequestInsuranceCheck), head(*r, EventRequestInsuranceCheck, now, actor),
		InsuranceChecked{Status: o.Status, Reference: o.Reference, Reason: o.Reason, Flags: r.Insurance.Flags, At: now, OwnerID: r.OwnerID})
	if err != nil {
		return Change{}, err
	}
	change.Outbox = append(append(change.Outbox, ev), o.Outbox...)
	return change, nil
}

// DecideInsurance is an operator settling the question by hand: waived
// (Yolda pays or the customer does) or rejected.
func (s *Service) DecideInsurance(ctx context.Context, who identity.Principal, requestID string, decision InsuranceStatus, reason string) (Request, error) {
	if !who.Role.Staff() {
		return Request{}, ErrForbidden
	}
	var errs validate.Errors
	if !slices.Contains(Decisions, decision) {
		errs.Add("decision", "must be waived or rejected")
	}
	reason = errs.Text("reason", reason, decision == InsuranceRejected, maxReason)
	if err := errs.Err(); err != nil {
		return Request{}, err
	}
	if !id.Valid("req", requestID) {
		return Request{}, ErrNotFound
	}
	r, err := s.RecordInsurance(ctx, who, requestID, InsuranceOutcome{Status: decision, Reason: reason}, nil)
	if errors.Is(err, ErrAlreadyDecided) {
		return Request{}, fmt.Errorf("insurance is already decided: %w", ErrConflict)
	}
	return r, err
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func mergeFlags(have, add []string) []string {
	for _, f := range add {
		if !slices.Contains(have, f) {
			have = append(have, f)
		}
	}
	return have
}

// PendingChecks is how many of an insurer's checks are pending, and since
// when the oldest.
type PendingChecks struct {
	Insurer string
	Count   int
	Oldest  time.Time
}
