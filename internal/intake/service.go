package intake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/yolda/yolda/internal/id"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/outbox"
	"github.com/yolda/yolda/internal/validate"
)

// Options configure a Service.
type Options struct {
	Batch BatchOptions
	// Updates tune the group commit of consumers' updates (Update).
	Updates BatchOptions
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// KnownInsurer reports whether an insurer code is configured, i.e.
	// whether something will check its policies. Nil knows none (no
	// insurers file). A request naming an insurer it does not know is
	// accepted straight into manual review (see Create).
	KnownInsurer func(code string) bool
	// DispatchBeforeCover reports whether dispatch may start before a
	// known insurer confirms cover. Nil means it may, for every insurer.
	DispatchBeforeCover func(insurer string) bool
	// Committed, if set, is called after every transaction that committed
	// outbox messages, so an in-process relay can wake at once.
	Committed func()
	// Offers, if set, tells whether a request is offered to a driver: a
	// driver may read the requests offered to it, not only those assigned.
	Offers OfferLookup
	// DriverFreed, if set, is called after a cancellation took a driver
	// off its job (the database frees the driver in the same transaction;
	// this tells caches such as the position index).
	DriverFreed func(ctx context.Context, driverID string)
	Logger      *slog.Logger
}

// OfferLookup answers whether a request is offered to a driver now.
type OfferLookup interface {
	OfferedTo(ctx context.Context, requestID, driverID string) (bool, error)
}

// Service is the request use cases: create, read, list, cancel.
type Service struct {
	store     Store
	committer *groupCommitter
	updates   *batcher[*pendingUpdate]
	// updatesObserve is Options.Updates.Observe.
	updatesObserve func(size int, took time.Duration, err error)
	now            func() time.Time
	known          func(string) bool
	early          func(string) bool
	committed      func()
	offers         OfferLookup
	freed          func(ctx context.Context, driverID string)
	log            *slog.Logger
}

// NewService starts the group committer; Close stops it.
func NewService(store Store, o Options) *Service {
	s := &Service{
		store:     store,
		committer: newGroupCommitter(store, o.Batch, o.Committed),
		now:       o.Now,
		known:     o.KnownInsurer,
		early:     o.DispatchBeforeCover,
		committed: o.Committed,
		offers:    o.Offers,
		freed:     o.DriverFreed,
		log:       o.Logger,

		updatesObserve: o.Updates.Observe,
	}
	s.updates = newBatcher(o.Updates, s.flushUpdates)
	if s.committed == nil {
		s.committed = func() {}
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.freed == nil {
		s.freed = func(context.Context, string) {}
	}
	return s
}

// Close commits what is queued and stops taking new requests. Call it after
// the HTTP server has drained, so that no handler waits on a closed queue.
func (s *Service) Close() {
	s.committer.close()
	s.updates.close()
}

// Shutdown is Close within ctx: once ctx ends, commits still in flight
// (a database that stopped answering) are abandoned and their callers,
// and those still queued, get an error; it then returns ctx's error.
func (s *Service) Shutdown(ctx context.Context) error { return s.committer.shutdown(ctx) }

// Created is the answer to Create.
type Created struct {
	Request Request
	// Replayed is true when an earlier call with the same Idempotency-Key
	// created the request.
	Replayed bool
}

// Create validates a submission and commits it with its first timeline
// entry and its outbox messages. When Create returns without error the
// request is durable.
func (s *Service) Create(ctx context.Context, who identity.Principal, sub Submission, idempotencyKey string) (Created, error) {
	if who.Role != identity.Customer && !who.Role.Staff() {
		return Created{}, ErrForbidden
	}
	r, err := sub.normalize()
	if err != nil {
		return Created{}, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	r.ID = id.New("req", now)
	r.OwnerID = who.UserID
	// Received, and at once either waiting for the insurer's word or
	// dispatching, as the insurer's rule says: the customer sees which.
	//
	// The rule for an insurer that no configuration knows, the same with
	// no insurers file as with one: the request is accepted (a stranded
	// driver is helped first), dispatch starts, and the insurance question
	// goes straight to manual review for an operator to settle. No check
	// job is committed, since no consumer would ever take it.
	r.Status = StatusAwaitingInsurance
	r.Insurance = Insurance{Status: InsurancePending, Flags: []string{}}
	if s.known == nil || !s.known(r.Policy.Insurer) {
		reason := "insurer " + r.Policy.Insurer + " is not configured"
		r.Insurance = Insurance{Status: InsuranceManualReview, CheckedAt: &now, Reason: &reason, Flags: []string{}}
	}
	if r.Insurance.Status != InsurancePending || s.early == nil || s.early(r.Policy.Insurer) {
		r.Status = StatusDispatching
	}
	r.Timeline = []TimelineEntry{
		{Status: StatusReceived, At: now, ActorID: who.UserID},
		{Status: r.Status, At: now, ActorID: who.UserID},
	}
	r.CreatedAt, r.UpdatedAt = now, now
	r.Version = 1

	msgs, err := s.creationMessages(r, outbox.ActorOf(who))
	if err != nil {
		return Created{}, err
	}
	c := &Creation{Request: r, IdempotencyKey: idempotencyKey, Outbox: msgs}
	if idempotencyKey != "" {
		c.Fingerprint = fingerprint(sub)
	}
	if err := s.committer.commit(ctx, c); err != nil {
		return Created{}, fmt.Errorf("create request: %w", err)
	}
	if c.Err != nil {
		return Created{}, c.Err
	}
	if c.ReplayOf != "" {
		prev, err := s.store.Request(ctx, c.ReplayOf)
		if err != nil {
			return Created{}, fmt.Errorf("load replayed request: %w", err)
		}
		return Created{Request: prev, Replayed: true}, nil
	}
	return Created{Request: r}, nil
}

// creationMessages are the jobs and the events a new request leaves in the
// outbox: the jobs of its first status, request.created and, when its
// insurance went straight to manual review, request.insurance_checked (what
// operators watch for manual reviews).
func (s *Service) creationMessages(r Request, actor outbox.Actor) ([]outbox.Message, error) {
	at := r.CreatedAt
	msgs, err := s.jobs(r, at, actor)
	if err != nil {
		return nil, err
	}
	created, err := outbox.NewMessage(outbox.EventSubject(outbox.EventRequestCreated), head(r, outbox.EventRequestCreated, at, actor),
		CreatedEvent{Request: r, OwnerID: r.OwnerID})
	if err != nil {
		return nil, err
	}
	msgs = append(msgs, created)
	if r.Insurance.Status == InsuranceManualReview {
		ev, err := outbox.NewMessage(outbox.EventSubject(EventRequestInsuranceCheck), head(r, EventRequestInsuranceCheck, at, actor),
			InsuranceChecked{Status: InsuranceManualReview, Reason: *r.Insurance.Reason, At: at, OwnerID: r.OwnerID})
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, ev)
	}
	return msgs, nil
}

// Jobs returns the jobs that move r on from its current status: what the
// sweeper commits again when r has sat there too long. Workers take them
// idempotently, so a duplicate changes nothing.
func (s *Service) Jobs(r Request) ([]outbox.Message, error) {
	return s.jobs(r, s.now().UTC(), outbox.SystemActor)
}

// jobs: a request whose insurance is pending needs its check (whatever its
// status: dispatch may have started before cover) if its insurer is known
// (one that was once and is no longer configured gets none: nothing would
// take it; the pending gauges and the sweeper's stuck flag show it to
// operators); one dispatching needs
// its dispatch; a received one (stored by an older build) needs both
// where the insurer lets dispatch start before cover is confirmed.
func (s *Service) jobs(r Request, at time.Time, actor outbox.Actor) ([]outbox.Message, error) {
	verify := r.Insurance.Status == InsurancePending && !r.Status.Final() && s.known != nil && s.known(r.Policy.Insurer)
	dispatch := r.Status == StatusDispatching || (r.Status == StatusReceived && (s.early == nil || s.early(r.Policy.Insurer)))
	var msgs []outbox.Message
	if verify {
		m, err := outbox.NewMessage(outbox.InsuranceVerifySubject(r.Policy.Insurer, r.ID), head(r, "insurance.verify", at, actor), VerifyJob{
			Insurer:      r.Policy.Insurer,
			PolicyNumber: r.Policy.PolicyNumber,
			Plate:        r.Vehicle.Plate,
			ServiceType:  r.ServiceType,
			IncidentAt:   r.CreatedAt,
		})
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	}
	if dispatch {
		m, err := NewDispatchJob(r, at, actor)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// NewDispatchJob is the job that asks the dispatch role to find r a
// driver: committed when r starts dispatching, and again by dispatch
// whenever an offer ends without an assignment (the next round). It
// carries r's version as it is.
func NewDispatchJob(r Request, at time.Time, actor outbox.Actor) (outbox.Message, error) {
	return outbox.NewMessage(outbox.DispatchRequestSubject(r.ID), head(r, "dispatch.request", at, actor), DispatchJob{
		ServiceType: r.ServiceType,
		Location:    r.Location,
	})
}

// head is the envelope head of a message about r as it is now: it carries
// r's version as its seq.
func head(r Request, msgType string, at time.Time, actor outbox.Actor) outbox.Envelope {
	return outbox.Envelope{Type: msgType, OccurredAt: at, RequestID: r.ID, Seq: r.Version, Actor: actor}
}

// VerifyJob is the data of an insurance.verify job.
type VerifyJob struct {
	Insurer      string      `json:"insurer"`
	PolicyNumber string      `json:"policy_number"`
	Plate        string      `json:"plate"`
	ServiceType  ServiceType `json:"service_type"`
	IncidentAt   time.Time   `json:"incident_at"`
}

// DispatchJob is the data of a dispatch.request job.
type DispatchJob struct {
	ServiceType ServiceType `json:"service_type"`
	Location    Location    `json:"location"`
}

// CreatedEvent is the data of a request.created event: the request as
// stored, and who asked for it.
type CreatedEvent struct {
	Request Request `json:"request"`
	OwnerID string  `json:"owner_id"`
}

// StatusChange is the data of a request.status_changed event.
type StatusChange struct {
	From    Status    `json:"from"`
	To      Status    `json:"to"`
	At      time.Time `json:"at"`
	Reason  string    `json:"reason,omitempty"`
	OwnerID string    `json:"owner_id"`
	// DriverID is the driver on the job, if any (after the change; before
	// it when the change took the driver off).
	DriverID string `json:"driver_id,omitempty"`
}

// fingerprint identifies a submission independently of its JSON spelling
// (key order, spacing), so a client that re-encodes the same body on retry
// is still recognised.
func fingerprint(sub Submission) string {
	b, _ := json.Marshal(sub) // a decoded Submission always encodes
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Get returns a request the caller may see.
func (s *Service) Get(ctx context.Context, who identity.Principal, requestID string) (Request, error) {
	if !id.Valid("req", requestID) {
		return Request{}, ErrNotFound
	}
	// The caller's scope is part of the query, so that another's request
	// and a missing one cost the same (one lookup that finds nothing):
	// timing tells nobody which ids exist.
	f, ok := scope(who, Filter{ID: requestID, Limit: 1})
	if !ok {
		return Request{}, ErrNotFound
	}
	found, err := s.store.Requests(ctx, f)
	if err != nil {
		return Request{}, fmt.Errorf("read request: %w", err)
	}
	if len(found) > 0 {
		return found[0], nil
	}
	if who.Role == identity.Driver && s.offers != nil {
		// A driver may also read the requests offered to it now. The
		// check costs the same whether the request exists or not.
		offered, err := s.offers.OfferedTo(ctx, requestID, who.UserID)
		if err != nil {
			return Request{}, fmt.Errorf("read offers: %w", err)
		}
		if offered {
			return s.store.Request(ctx, requestID)
		}
	}
	return Request{}, ErrNotFound
}

// scope narrows f to what who may read (the rule of mayRead, as a
// filter): staff everything, a customer its own requests, a driver those
// assigned to it (Get also lets a driver read those offered to it now).
// No other role reads requests.
func scope(who identity.Principal, f Filter) (Filter, bool) {
	switch {
	case who.Role.Staff():
	case who.Role == identity.Customer:
		f.OwnerID = who.UserID
	case who.Role == identity.Driver:
		f.DriverID = who.UserID
	default:
		return f, false
	}
	return f, true
}

// mayRead is the object-level rule: staff see everything, a customer its
// own requests, a driver the requests assigned to it. scope is the same
// rule as a filter; keep them together.
func mayRead(who identity.Principal, r Request) bool {
	switch {
	case who.Role.Staff():
		return true
	case who.Role == identity.Customer:
		return r.OwnerID == who.UserID
	case who.Role == identity.Driver:
		return r.Assignment != nil && r.Assignment.DriverID == who.UserID
	}
	return false
}

// Page is one page of a list.
type Page struct {
	Items      []Request
	NextCursor string
}

// Limits of a list page.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// List returns the requests matching f that the caller may see. A
// customer's filter is narrowed to its own requests, a driver's to those
// assigned to it, whatever it asked for.
func (s *Service) List(ctx context.Context, who identity.Principal, f Filter) (Page, error) {
	f, ok := scope(who, f)
	if !ok {
		return Page{}, ErrForbidden
	}
	if f.Limit <= 0 {
		f.Limit = DefaultLimit
	}
	limit := f.Limit
	f.Limit++ // one more tells whether there is a next page
	items, err := s.store.Requests(ctx, f)
	if err != nil {
		return Page{}, fmt.Errorf("list requests: %w", err)
	}
	page := Page{Items: items}
	if len(items) > limit {
		page.Items = items[:limit]
		page.NextCursor = items[limit-1].ID
	}
	return page, nil
}

// Cancel calls a request off. Its customer may cancel until the driver has
// arrived; staff may cancel anything not yet final.
func (s *Service) Cancel(ctx context.Context, who identity.Principal, requestID, reason string) (Request, error) {
	var errs validate.Errors
	reason = errs.Text("reason", reason, false, maxReason)
	if err := errs.Err(); err != nil {
		return Request{}, err
	}
	if !id.Valid("req", requestID) {
		return Request{}, ErrNotFound
	}
	defer s.committed()
	var freed string
	r, err := s.store.UpdateRequest(ctx, requestID, func(r *Request) (Change, error) {
		if !mayRead(who, *r) || who.Role == identity.Driver {
			return Change{}, ErrNotFound
		}
		if !CanMove(r.Status, StatusCancelled) || (!who.Role.Staff() && !customerMayCancel(r.Status)) {
			return Change{}, fmt.Errorf("cancel a request that is %s: %w", r.Status, ErrConflict)
		}
		freed = ""
		if r.Status.Active() && r.Assignment != nil {
			freed = r.Assignment.DriverID
		}
		now := s.now().UTC().Truncate(time.Microsecond)
		r.Advance(now)
		return s.move(r, who, StatusCancelled, reason, now)
	})
	if err == nil && freed != "" {
		s.freed(ctx, freed)
	}
	return r, err
}

// move is Transition, for a change begun at now (r.Advance).
func (s *Service) move(r *Request, who identity.Principal, to Status, reason string, now time.Time) (Change, error) {
	return Transition(r, who, to, reason, now)
}

// Transition moves r to status to, if the state machine allows it
// (ErrConflict otherwise), as part of a change begun at now (the caller
// has called r.Advance(now) once for the change), and returns what to
// store with it: the timeline entry and the request.status_changed event,
// which carries r's new version. It is the one way any package changes a
// request's status.
func Transition(r *Request, who identity.Principal, to Status, reason string, now time.Time) (Change, error) {
	if !CanMove(r.Status, to) {
		return Change{}, fmt.Errorf("move a request that is %s to %s: %w", r.Status, to, ErrConflict)
	}
	from := r.Status
	r.Status = to
	change := StatusChange{From: from, To: to, At: now, Reason: reason, OwnerID: r.OwnerID}
	if r.Assignment != nil {
		change.DriverID = r.Assignment.DriverID
	}
	entry := TimelineEntry{Status: to, At: now, ActorID: who.UserID, Reason: reason}
	ev, err := outbox.NewMessage(outbox.EventSubject(outbox.EventRequestStatusChanged), head(*r, outbox.EventRequestStatusChanged, now, outbox.ActorOf(who)),
		change)
	if err != nil {
		return Change{}, err
	}
	return Change{Timeline: &entry, Outbox: []outbox.Message{ev}}, nil
}
