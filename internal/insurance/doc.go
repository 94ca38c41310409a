// Package insurance is Yolda's only way to ask an insurer whether a policy
// covers a request. It owns what makes calling slow, flaky systems safe: the
// insurers file (Config, LoadFile), the Adapter interface that hides each
// insurer's wire format, and Client, which wraps one insurer's adapter in a
// bulkhead, a circuit breaker, budgeted retries with jittered backoff and a
// per-attempt deadline, and reports its health and Prometheus metrics.
//
// Worker is the insurance role's job consumer and the only caller of
// Client.Verify: it decides what a failed check means (back to the queue
// with a delay, manual_review past the insurer's patience) and hands every
// settled outcome to intake, which stores it with its events. Nothing in
// this package stores anything itself.
//
// Errors are classified by kind (Kind, Retryable and the Err* sentinels), so
// the caller can tell "the insurer said no" (a Verdict with Covered false,
// not an error), "the insurer is down, try later" (ErrUnavailable,
// ErrTimeout, ...) and "this request can never succeed" (ErrClient,
// ErrBadPayload) apart.
package insurance
