package checks

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/insurance"
	"github.com/yolda/yolda/internal/insurance/resilient"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
)

// fakeRequests is the request service: one pending request, and the
// outcomes recorded for it.
type fakeRequests struct {
	req      intake.Request
	outcomes []intake.InsuranceOutcome
	enqueued []outbox.Message
	// recordErr is what RecordInsurance answers (nil: recorded).
	recordErr error
}

func (f *fakeRequests) EnqueueOutbox(_ context.Context, msgs []outbox.Message) error {
	f.enqueued = append(f.enqueued, msgs...)
	return nil
}

func (f *fakeRequests) Get(context.Context, identity.Principal, string) (intake.Request, error) {
	return f.req, nil
}

func (f *fakeRequests) RecordInsurance(_ context.Context, _ identity.Principal, _ string, o intake.InsuranceOutcome, _ *outbox.Receipt) (intake.Request, error) {
	if f.recordErr != nil {
		return intake.Request{}, f.recordErr
	}
	f.outcomes = append(f.outcomes, o)
	return f.req, nil
}

type adapterFunc func(context.Context, insurance.Query) (insurance.Verdict, error)

func (f adapterFunc) Verify(ctx context.Context, q insurance.Query) (insurance.Verdict, error) {
	return f(ctx, q)
}

func newTestWorker(t *testing.T, a adapterFunc) (*Worker, *fakeRequests, []byte) {
	t.Helper()
	cfg := insurance.Config{Code: "anadolu", BaseURL: "http://127.0.0.1:1", Retry: insurance.Retry{Attempts: 1}}.Default()
	clients, err := resilient.NewClients([]insurance.Config{cfg},
		map[string]insurance.Factory{"rest": func(insurance.Config) (insurance.Adapter, error) { return a, nil }}, resilient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	reqs := &fakeRequests{req: intake.Request{ID: "req_1", Status: intake.StatusAwaitingInsurance, CreatedAt: now,
		Insurance: intake.Insurance{Status: intake.InsurancePending}}}
	job, err := outbox.New(outbox.InsuranceVerifySubject("anadolu", "req_1"), "insurance.verify", now, "req_1", outbox.SystemActor,
		intake.VerifyJob{Insurer: "anadolu", PolicyNumber: "POL-1", Plate: "34AB12", ServiceType: intake.Tow, IncidentAt: now})
	if err != nil {
		t.Fatal(err)
	}
	return NewWorker(clients, reqs, reqs, nil, nil), reqs, job.Payload
}

// The insurer's coverage document is recorded byte for byte; the terms
// read from it travel apart.
func TestHandleRecordsTheCoverageAsReceived(t *testing.T) {
	doc := json.RawMessage(`{ "max_tow_km" : 80, "services": ["tow"], "deductible_try": 500 }`)
	w, reqs, job := newTestWorker(t, func(context.Context, insurance.Query) (insurance.Verdict, error) {
		return insurance.Verdict{Covered: true, Reference: "A-1", CoverageDocument: doc,
			Coverage: &insurance.Coverage{MaxTowKm: 80, Services: []string{"tow"}}}, nil
	})
	if err := w.Handle(context.Background(), job, 1); err != nil {
		t.Fatal(err)
	}
	if len(reqs.outcomes) != 1 {
		t.Fatalf("%d outcomes recorded", len(reqs.outcomes))
	}
	o := reqs.outcomes[0]
	if string(o.Coverage) != string(doc) || o.Terms == nil || o.Terms.MaxTowKm != 80 || o.Status != intake.InsuranceApproved {
		t.Errorf("outcome: coverage %s, terms %+v, status %s", o.Coverage, o.Terms, o.Status)
	}
}

// A document larger than a request keeps is not stored; its terms apply.
func TestHandleDropsAnOversizedCoverageDocument(t *testing.T) {
	doc := json.RawMessage(`{"services":["tow"],"fine_print":"` + strings.Repeat("x", intake.MaxCoverageBytes) + `"}`)
	w, reqs, job := newTestWorker(t, func(context.Context, insurance.Query) (insurance.Verdict, error) {
		return insurance.Verdict{Covered: true, CoverageDocument: doc, Coverage: &insurance.Coverage{Services: []string{"tow"}}}, nil
	})
	if err := w.Handle(context.Background(), job, 1); err != nil {
		t.Fatal(err)
	}
	if o := reqs.outcomes[0]; o.Coverage != nil || o.Terms == nil {
		t.Errorf("oversized document: stored %d bytes, terms %+v", len(o.Coverage), o.Terms)
	}
}

// An insurer that is down defers the check (a domain error, no broker in
// sight); an envelope this build cannot read is a failure, not a retry.
func TestHandleDefersOrFails(t *testing.T) {
	w, reqs, job := newTestWorker(t, func(context.Context, insurance.Query) (insurance.Verdict, error) {
		return insurance.Verdict{}, insurance.ErrServer
	})
	err := w.Handle(context.Background(), job, 1)
	later, ok := errors.AsType[*RetryAfter](err)
	if !ok || later.Delay <= 0 || !errors.Is(err, insurance.ErrServer) || len(reqs.outcomes) != 0 {
		t.Errorf("insurer down: %v (retry after: %v), outcomes %v", err, ok, reqs.outcomes)
	}
	newer := []byte(strings.Replace(string(job), `"version":1`, `"version":2`, 1))
	err = w.Handle(context.Background(), newer, 1)
	if _, retry := errors.AsType[*RetryAfter](err); !errors.Is(err, outbox.ErrUnknownVersion) || retry {
		t.Errorf("unknown envelope version: %v", err)
	}
}

// A check's call event travels with its outcome; when the outcome changes
// nothing (an operator settled the question meanwhile) the call, made all
// the same, is committed on its own, once.
func TestHandleRecordsTheCallWithTheOutcomeOrAlone(t *testing.T) {
	covered := func(context.Context, insurance.Query) (insurance.Verdict, error) {
		return insurance.Verdict{Covered: true}, nil
	}
	w, reqs, job := newTestWorker(t, covered)
	if err := w.Handle(context.Background(), job, 1); err != nil {
		t.Fatal(err)
	}
	if len(reqs.outcomes) != 1 || len(reqs.outcomes[0].Outbox) != 1 || len(reqs.enqueued) != 0 {
		t.Fatalf("recorded: %d outcomes, %d enqueued", len(reqs.outcomes), len(reqs.enqueued))
	}
	if m := reqs.outcomes[0].Outbox[0]; m.Subject != "events.insurance.call" {
		t.Errorf("call event on %s", m.Subject)
	}

	w, reqs, job = newTestWorker(t, covered)
	reqs.recordErr = intake.ErrAlreadyDecided
	if err := w.Handle(context.Background(), job, 1); err != nil {
		t.Fatal(err)
	}
	if len(reqs.enqueued) != 1 || reqs.enqueued[0].Subject != "events.insurance.call" {
		t.Errorf("settled meanwhile: enqueued %v", reqs.enqueued)
	}
}
