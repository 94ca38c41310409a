package insurance

import "time"

// Call is the data of an insurance.call event (docs/events.md): one policy
// check with an insurer, as the insurance role records it and the
// warehouse's insurers report counts it. It holds nothing of the policy or
// the person (no policy number, plate, name): the request id in the
// envelope leads an operator to them.
type Call struct {
	Insurer string    `json:"insurer"`
	At      time.Time `json:"at"`
	// LatencyMs is the whole check: every attempt and back-off.
	LatencyMs float64 `json:"latency_ms"`
	// Outcome is OutcomeCovered, OutcomeNotCovered or OutcomeError.
	Outcome string `json:"outcome"`
	// ErrorKind is Kind of the error, with OutcomeError.
	ErrorKind string `json:"error_kind,omitempty"`
	Attempts  int    `json:"attempts"`
}
