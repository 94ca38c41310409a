package insurance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/yolda/yolda/internal/bus"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
)

// ConsumerPrefix names the durable consumers of the insurance role: one
// per insurer ("insurance-anadolu"), each on its own subject, so an insurer
// that is down parks only its own checks.
const ConsumerPrefix = "insurance-"

// Requests is what the worker needs of the request service.
type Requests interface {
	Get(ctx context.Context, who identity.Principal, requestID string) (intake.Request, error)
	RecordInsurance(ctx context.Context, who identity.Principal, requestID string, o intake.InsuranceOutcome, receipt *outbox.Receipt) (intake.Request, error)
}

// system is who the worker acts as.
var system = identity.Principal{UserID: "system", Role: identity.Operator}

// Worker handles insurance.verify jobs: it is the only code that calls
// insurers. A check either settles (approved, rejected, or manual_review
// once the insurer's patience has run out) in one transaction with its
// events, or goes back to the queue with a delay; it never blocks a
// handler slot waiting for an insurer that is known to be down.
type Worker struct {
	clients  *Clients
	requests Requests
	now      func() time.Time
	log      *slog.Logger
}

// NewWorker returns a worker. now may be nil.
func NewWorker(clients *Clients, requests Requests, now func() time.Time, log *slog.Logger) *Worker {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Worker{clients: clients, requests: requests, now: now, log: log}
}

// ConsumerConfig is the durable consumer of one insurer's checks: as many
// handlers as the insurer's bulkhead, and room for a day of parked checks.
func ConsumerConfig(c Config) bus.ConsumerConfig {
	return bus.ConsumerConfig{
		Stream:        bus.StreamJobs,
		Durable:       ConsumerPrefix + c.Code,
		FilterSubject: outbox.InsuranceVerifyFilter(c.Code),
		// A handler holds a slot for at most every attempt's timeout plus
		// the back-off between them.
		AckWait:       time.Duration(c.Retry.Attempts)*(c.Timeout+c.Retry.MaxDelay) + 10*time.Second,
		Concurrency:   c.Bulkhead,
		MaxAckPending: 100_000,
	}
}

// Handle processes one delivery of an insurance.verify job.
func (w *Worker) Handle(ctx context.Context, d bus.Delivery) error {
	var env outbox.Envelope
	if err := json.Unmarshal(d.Data, &env); err != nil || env.RequestID == "" {
		return fmt.Errorf("malformed insurance job %s: %v", d.ID, err)
	}
	var job intake.VerifyJob
	if err := json.Unmarshal(env.Data, &job); err != nil {
		return fmt.Errorf("malformed insurance job %s: %w", d.ID, err)
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
	deadline := r.CreatedAt.Add(client.Config().Patience)
	if !w.now().Before(deadline) {
		return w.record(ctx, r.ID, intake.InsuranceOutcome{Status: intake.InsuranceManualReview,
			Reason: "the insurer did not answer within " + client.Config().Patience.String()}, receipt)
	}
	verdict, err := client.Verify(ctx, Query{PolicyNumber: job.PolicyNumber, Plate: job.Plate,
		ServiceType: string(job.ServiceType), IncidentAt: job.IncidentAt})
	if err != nil {
		delay := min(retryDelay(err, d.NumDelivered, client.Config()), max(deadline.Sub(w.now()), time.Second))
		w.log.Debug("insurance check deferred", "request_id", r.ID, "insurer", job.Insurer, "kind", Kind(err), "retry_in", delay.String())
		return bus.Retry(delay)
	}
	return w.record(ctx, r.ID, outcome(verdict), receipt)
}

func (w *Worker) record(ctx context.Context, requestID string, o intake.InsuranceOutcome, receipt *outbox.Receipt) error {
	_, err := w.requests.RecordInsurance(ctx, system, requestID, o, receipt)
	switch {
	case err == nil, errors.Is(err, outbox.ErrAlreadyProcessed), errors.Is(err, intake.ErrAlreadyDecided), errors.Is(err, intake.ErrNotFound):
		return nil
	}
	return err
}

// outcome maps an insurer's verdict to the request's insurance outcome.
func outcome(v Verdict) intake.InsuranceOutcome {
	o := intake.InsuranceOutcome{Status: intake.InsuranceRejected, Reference: v.Reference, Reason: v.Reason}
	if v.Covered {
		o.Status = intake.InsuranceApproved
	}
	if v.Coverage != nil {
		o.Terms = &intake.Coverage{MaxTowKm: v.Coverage.MaxTowKm, Services: v.Coverage.Services}
		if raw, err := json.Marshal(v.Coverage); err == nil {
			o.Coverage = raw
		}
	}
	return o
}

// retryDelay is how long a check waits before its next try: while the
// breaker is open, about as long as it stays open; when the bulkhead is
// full, a moment; after failed attempts, an exponential back-off in units
// of the breaker's open time, up to a minute. Every delay is jittered so
// that parked checks do not come back together.
func retryDelay(err error, delivered uint64, c Config) time.Duration {
	var d time.Duration
	switch {
	case errors.Is(err, ErrUnavailable):
		d = c.Breaker.OpenFor
	case errors.Is(err, ErrBulkheadFull):
		d = time.Second
	default:
		d = min(c.Breaker.OpenFor<<min(max(delivered, 1)-1, 3), time.Minute)
	}
	return d/2 + rand.N(d/2+1)
}
