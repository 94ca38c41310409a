package insurance

import (
	"context"
	"encoding/json"
	"time"
)

// Adapter speaks one insurer's protocol. It maps a Query to the insurer's
// wire format and the answer back to a Verdict; nothing outside an adapter
// knows an insurer's format.
//
// Verify makes exactly one attempt and honours ctx's deadline: the Client
// around it owns retries, the breaker and the bulkhead. "Not covered" is a
// Verdict, not an error. Errors should wrap ErrServer, ErrClient or
// ErrBadPayload where the adapter knows which; transport errors may be
// returned as they are (the Client classifies timeouts and connection
// failures). Verify must be safe for concurrent use.
type Adapter interface {
	Verify(ctx context.Context, q Query) (Verdict, error)
}

// Factory builds the adapter for one insurer from its configuration; the
// composition root maps each Config.Adapter name to one.
type Factory func(cfg Config) (Adapter, error)

// Query is what Yolda asks an insurer about one assistance request.
type Query struct {
	PolicyNumber string
	Plate        string
	ServiceType  string // tow, jump_start, flat_tire, fuel_delivery, lockout, winch
	IncidentAt   time.Time
}

// Verdict is the insurer's answer.
type Verdict struct {
	Covered bool
	// Reference is the insurer's id for this check (may be empty).
	Reference string
	// Coverage is what the policy covers, as read from CoverageDocument,
	// when the insurer says.
	Coverage *Coverage
	// CoverageDocument is the insurer's coverage document byte for byte
	// as received (nil when it sent none), kept for the record apart from
	// what Yolda read in it.
	CoverageDocument json.RawMessage
	// Reason is why not covered (or a note), when the insurer says.
	Reason string
	// Raw is the insurer's answer as received, for the record.
	Raw json.RawMessage
}

// Outcomes of a call to an insurer, as its metrics and the insurance.call
// event name them.
const (
	OutcomeCovered    = "covered"
	OutcomeNotCovered = "not_covered"
	OutcomeError      = "error"
)

// Outcome names what a call ended in: OutcomeError when err is not nil,
// else whether v covers.
func Outcome(v Verdict, err error) string {
	switch {
	case err != nil:
		return OutcomeError
	case v.Covered:
		return OutcomeCovered
	}
	return OutcomeNotCovered
}

// Coverage is what a policy covers.
type Coverage struct {
	MaxTowKm int      `json:"max_tow_km"`
	Services []string `json:"services"`
}
