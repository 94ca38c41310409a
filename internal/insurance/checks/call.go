package checks

import (
	"time"

	"github.com/yolda/yolda/internal/insurance"
	"github.com/yolda/yolda/internal/outbox"
)

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
	c := insurance.Call{
		Insurer: insurer, At: start.UTC(), LatencyMs: float64(end.Sub(start).Microseconds()) / 1000,
		Outcome: insurance.Outcome(v, err), ErrorKind: insurance.Kind(err), Attempts: attempts,
	}
	return outbox.New(outbox.EventSubject(outbox.EventInsuranceCall), outbox.EventInsuranceCall, end, requestID, outbox.SystemActor, c)
}
