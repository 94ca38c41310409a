package checks

import (
	"time"

	"github.com/yolda/yolda/internal/insurance"
	"github.com/yolda/yolda/internal/outbox"
)

// Call is the data of an insurance.call event (docs/events.md): one policy
// check with an insurer as the warehouse's insurers report counts it. It
// holds nothing of the policy or the person (no policy number, plate,
// name): the request id in the envelope leads an operator to them.
type Call struct {
	Insurer string    `json:"insurer"`
	At      time.Time `json:"at"`
	// LatencyMs is the whole check: every attempt and back-off.
	LatencyMs float64 `json:"latency_ms"`
	// Outcome is insurance.OutcomeCovered, OutcomeNotCovered or
	// OutcomeError.
	Outcome string `json:"outcome"`
	// ErrorKind is insurance.Kind of the error, with OutcomeError.
	ErrorKind string `json:"error_kind,omitempty"`
	Attempts  int    `json:"attempts"`
}

// recorded reports whether a check is recorded as a call: it reached the
// insurer (a call the bulkhead or the breaker turned away sent nothing,
// and yolda_insurer_errors_total counts it), and was not abandoned by
// Yolda itself (a shutdown), which says nothing about the insurer.
func recorded(attempts int, err error) bool {
	return attempts > 0 && insurance.Kind(err) != insurance.KindCanceled
}

// callEvent is the insurance.call event of one check of requestID with
// insurer, started at start and ended at end. It names the request but no
// version: it changes nothing of the request (docs/events.md, the rule of
// offer events).
func callEvent(requestID, insurer string, start, end time.Time, v insurance.Verdict, attempts int, err error) (outbox.Message, error) {
	c := Call{
		Insurer: insurer, At: start.UTC(), LatencyMs: float64(end.Sub(start).Microseconds()) / 1000,
		Outcome: insurance.Outcome(v, err), ErrorKind: insurance.Kind(err), Attempts: attempts,
	}
	return outbox.New(outbox.EventSubject(outbox.EventInsuranceCall), outbox.EventInsuranceCall, end, requestID, outbox.SystemActor, c)
}
