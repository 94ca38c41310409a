// Package insurance is the vocabulary of asking an insurer whether a policy
// covers a request: the Adapter interface that hides each insurer's wire
// format (Query in, Verdict out), an insurer's Config (with its Secret),
// and the kinds of failure (Kind, Retryable and the Err* sentinels), so a
// caller can tell "the insurer said no" (a Verdict with Covered false, not
// an error), "the insurer is down, try later" (ErrUnavailable, ErrTimeout,
// ...) and "this request can never succeed" (ErrClient, ErrBadPayload)
// apart.
//
// The rest is in sub-packages, each with one job and its own
// dependencies:
//
//   - configfile reads the insurers file (YAML, secrets from the
//     environment);
//   - resilient is the only safe way to call an insurer: a bulkhead, a
//     circuit breaker, budgeted retries, a deadline per attempt, health and
//     metrics around an Adapter;
//   - checks is the insurance role's worker: what an answer, or its
//     absence, means for a request (it imports intake, never the broker);
//   - rest is the reference adapter, mockinsurer a stand-in insurer.
package insurance
