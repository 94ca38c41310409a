// Package insurance is Yolda's only way to ask an insurer whether a policy
// covers a request. It owns what makes calling slow, flaky systems safe: the
// insurers file (Config, LoadFile), the Adapter interface that hides each
// insurer's wire format, and Client, which wraps one insurer's adapter in a
// bulkhead, a circuit breaker, budgeted retries with jittered backoff and a
// per-attempt deadline, and reports its health and Prometheus metrics.
//
// It is not the queue consumer: deciding what a failed check means for a
// request (re-queue with a delay, manual_review past the insurer's patience,
// dispatch before cover) belongs to the worker that calls Client.Verify.
// It never stores anything either.
//
// Errors are classified by kind (Kind, Retryable and the Err* sentinels), so
// the caller can tell "the insurer said no" (a Verdict with Covered false,
// not an error), "the insurer is down, try later" (ErrUnavailable,
// ErrTimeout, ...) and "this request can never succeed" (ErrClient,
// ErrBadPayload) apart.
package insurance
