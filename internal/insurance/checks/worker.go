// Package checks is the insurance role's worker: it takes a request's
// insurance.verify job, asks the insurer through its resilient client, and
// decides what the answer (or its absence) means for the request: an
// outcome that intake stores with its events, or "try again later", past
// the insurer's patience "manual review". It is the only caller of
// resilient.Client.Verify, and records every check that reached the
// insurer as an insurance.call event: with the outcome, in its
// transaction, or on its own when the check is deferred.
//
// It knows nothing of the broker: a check that cannot be made now returns
// a RetryAfter error, which the composition root maps onto the consumer's
// delayed redelivery.
package checks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/insurance"
	"github.com/yolda/yolda/internal/insurance/resilient"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
)

// ConsumerPrefix names the durable consumers of the insurance role: one
// per insurer ("insurance-anadolu"), each on its own subject, so an insurer
// that is down parks only its own checks. Receipts carry the same name.
const ConsumerPrefix = "insurance-"

// RetryAfter is Handle's answer when the check could not be made now (the
// insurer is down, its breaker open, its bulkhead full): the job should
// come back after Delay. It is not a failure of the job.
type RetryAfter struct {
	Delay time.Duration
	Cause error
}

func (e *RetryAfter) Error() string {
	return fmt.Sprintf("check deferred %s: %v", e.Delay, e.Cause)
}

func (e *RetryAfter) Unwrap() error { return e.Cause }

// Requests is what the worker needs of the request service.
type Requests interface {
	Get(ctx context.Context, who identity.Principal, requestID string) (intake.Request, error)
	RecordInsurance(ctx context.Context, who identity.Principal, requestID string, o intake.InsuranceOutcome, receipt *outbox.Receipt) (intake.Request, error)
}

// Outbox commits messages on their own: the insurance.call events of the
// checks that settle nothing.
type Outbox interface {
	EnqueueOutbox(ctx context.Context, msgs []outbox.Message) error
}

// system is who the worker acts as.
var system = identity.Principal{UserID: "system", Role: identity.Operator}

// Worker handles insurance.verify jobs. A check either settles (approved,
// rejected, or manual_review once the insurer's patience has run out) in
// one transaction with its events, or is deferred; it never blocks a
// handler slot waiting for an insurer that is known to be down.
type Worker struct {
	clients  *resilient.Clients
	requests Requests
	outbox   Outbox
	now      func() time.Time
	log      *slog.Logger
}

// NewWorker returns a worker. now and log may be nil.
func NewWorker(clients *resilient.Clients, requests Requests, ob Outbox, now func() time.Time, log *slog.Logger) *Worker {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Worker{clients: clients, requests: requests, outbox: ob, now: now, log: log}
}

// Handle processes one delivery of an insurance.verify job; delivered is
// how many times the job has been delivered, this time included. It
// returns nil once the check is settled (or was already), a *RetryAfter
// when it should come back later, and any other error when the job cannot
// be processed (an envelope it cannot read, the database failing).
func (w *Worker) Handle(ctx context.Context, payload []byte, delivered uint64) error {
	env, err := outbox.Decode(payload)
	if err == nil && env.RequestID == "" {
		err = fmt.Errorf("%w: %s has no request id", outbox.ErrMalformed, env.ID)
	}
	if err != nil {
		return fmt.Errorf("insurance job: %w", err)
	}
	var job intake.VerifyJob
	if err := json.Unmarshal(env.Data, &job); err != nil {
		return fmt.Errorf("insurance job %s: %w: %v", env.ID, outbox.ErrMalformed, err)
	}
	r, err := w.requests.Get(ctx, system, env.RequestID)
	if errors.Is(err, intake.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if r.Insurance.Status != intake.InsurancePending || r.Status.Final() {
		return nil // settled already (an earlier delivery, an operator)
	}
	receipt := &outbox.Receipt{Consumer: ConsumerPrefix + job.Insurer, MessageID: env.ID}
	client, ok := w.clients.Get(job.Insurer)
	if !ok {
		return w.record(ctx, r.ID, intake.InsuranceOutcome{Status: intake.InsuranceManualReview,
			Reason: "insurer " + job.Insurer + " is not configured"}, receipt)
	}
	cfg := client.Config()
	deadline := r.CreatedAt.Add(cfg.Patience)
	if !w.now().Before(deadline) {
		return w.record(ctx, r.ID, intake.InsuranceOutcome{Status: intake.InsuranceManualReview,
			Reason: "the insurer did not answer within " + cfg.Patience.String()}, receipt)
	}
	start := w.now()
	verdict, attempts, err := client.VerifyCounted(ctx, insurance.Query{PolicyNumber: job.PolicyNumber, Plate: job.Plate,
		ServiceType: string(job.ServiceType), IncidentAt: job.IncidentAt})
	var call []outbox.Message
	if recorded(attempts, err) {
		m, merr := callEvent(r.ID, job.Insurer, start, w.now(), verdict, attempts, err)
		if merr != nil {
			return merr
		}
		call = []outbox.Message{m}
	}
	if err != nil {
		delay := min(retryDelay(err, delivered, cfg), max(deadline.Sub(w.now()), time.Second))
		w.log.Debug("insurance check deferred", "request_id", r.ID, "insurer", job.Insurer, "kind", insurance.Kind(err), "retry_in", delay.String())
		w.enqueue(ctx, r.ID, call)
		return &RetryAfter{Delay: delay, Cause: err}
	}
	o := outcome(verdict)
	o.Outbox = call
	if n := len(verdict.CoverageDocument); n > intake.MaxCoverageBytes {
		w.log.Warn("insurer's coverage document not stored: too large", "request_id", r.ID, "insurer", job.Insurer,
			"bytes", n, "max", intake.MaxCoverageBytes)
	}
	return w.record(ctx, r.ID, o, receipt)
}

// record stores o, with its insurance.call event if it has one.
func (w *Worker) record(ctx context.Context, requestID string, o intake.InsuranceOutcome, receipt *outbox.Receipt) error {
	_, err := w.requests.RecordInsurance(ctx, system, requestID, o, receipt)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, outbox.ErrAlreadyProcessed), errors.Is(err, intake.ErrAlreadyDecided), errors.Is(err, intake.ErrNotFound):
		// Settled meanwhile (by an operator, by another delivery of the
		// job that overlapped this one): this outcome changed nothing, but
		// the insurer was called all the same.
		w.enqueue(ctx, requestID, o.Outbox)
		return nil
	}
	return err
}

// enqueue commits the insurance.call event of a check that settles
// nothing. One that cannot be written is logged, not retried: the check
// matters more than its statistics, and the next delivery calls again.
func (w *Worker) enqueue(ctx context.Context, requestID string, call []outbox.Message) {
	if len(call) == 0 {
		return
	}
	if err := w.outbox.EnqueueOutbox(ctx, call); err != nil {
		w.log.Warn("insurer call not recorded", "request_id", requestID, "err", err)
	}
}

// outcome maps an insurer's verdict to the request's insurance outcome: the
// coverage document as the insurer sent it, and apart from it the terms
// Yolda read in it.
func outcome(v insurance.Verdict) intake.InsuranceOutcome {
	o := intake.InsuranceOutcome{Status: intake.InsuranceRejected, Reference: v.Reference, Reason: v.Reason}
	if v.Covered {
		o.Status = intake.InsuranceApproved
	}
	if len(v.CoverageDocument) <= intake.MaxCoverageBytes {
		o.Coverage = v.CoverageDocument
	}
	if v.Coverage != nil {
		o.Terms = &intake.Coverage{MaxTowKm: v.Coverage.MaxTowKm, Services: v.Coverage.Services}
	}
	return o
}

// retryDelay is how long a check waits before its next try: while the
// breaker is open, about as long as it stays open; when the bulkhead is
// full, a moment; after failed attempts, an exponential back-off in units
// of the breaker's open time, up to a minute. Every delay is jittered so
// that parked checks do not come back together.
func retryDelay(err error, delivered uint64, c insurance.Config) time.Duration {
	var d time.Duration
	switch {
	case errors.Is(err, insurance.ErrUnavailable):
		d = c.Breaker.OpenFor
	case errors.Is(err, insurance.ErrBulkheadFull):
		d = time.Second
	default:
		d = min(c.Breaker.OpenFor<<min(max(delivered, 1)-1, 3), time.Minute)
	}
	return d/2 + rand.N(d/2+1)
}
