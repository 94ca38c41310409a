package insurance

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
)

// Sentinel errors. Every error returned by Client.Verify matches exactly one
// of them with errors.Is (except, for an adapter's own unclassified errors,
// none: kind "other"), and also still matches its cause (a
// context.DeadlineExceeded, a *url.Error, ...).
//
// Adapters wrap ErrServer, ErrClient and ErrBadPayload themselves (they know
// the wire protocol); transport errors they may return as they are: the
// Client classifies timeouts and connection failures.
var (
	// ErrTimeout: one attempt hit its deadline (the insurer's timeout).
	ErrTimeout = errors.New("timed out")
	// ErrRefused: no connection, or it broke before an answer (refused,
	// reset, closed, unexpected EOF, DNS or TLS failure).
	ErrRefused = errors.New("unreachable")
	// ErrServer: the insurer answered with a server error (5xx, or 429).
	ErrServer = errors.New("server error")
	// ErrClient: the insurer rejected the request itself (4xx). Retrying the
	// same request cannot help, and the insurer is not down.
	ErrClient = errors.New("request rejected")
	// ErrBadPayload: the insurer answered something we cannot read. Not
	// retried; it counts as a breaker failure (a broken insurer).
	ErrBadPayload = errors.New("bad payload")
	// ErrUnavailable: the insurer's circuit breaker is open (or half-open
	// with its probes in flight); nothing was sent. Try again later.
	ErrUnavailable = errors.New("unavailable: circuit breaker open")
	// ErrBulkheadFull: the insurer already has its maximum of concurrent
	// calls in flight; nothing was sent. Try again later.
	ErrBulkheadFull = errors.New("bulkhead full")
	// ErrCanceled: the caller's context ended (cancelled or past its own
	// deadline) before the insurer answered. Says nothing about the insurer.
	ErrCanceled = errors.New("abandoned by the caller")
)

// Kinds of error, as returned by Kind and used as the "kind" label of
// yolda_insurer_errors_total.
const (
	KindTimeout      = "timeout"
	KindRefused      = "refused"
	KindServer       = "server"
	KindClient       = "client"
	KindBadPayload   = "bad_payload"
	KindUnavailable  = "unavailable"
	KindBulkheadFull = "bulkhead_full"
	KindCanceled     = "canceled"
	KindOther        = "other"
)

// kinds maps sentinels to kinds. The order matters when an error wraps
// several: what happened to this call (rejected, abandoned) beats why.
var kinds = []struct {
	err  error
	kind string
}{
	{ErrBulkheadFull, KindBulkheadFull},
	{ErrUnavailable, KindUnavailable},
	{ErrCanceled, KindCanceled},
	{ErrClient, KindClient},
	{ErrBadPayload, KindBadPayload},
	{ErrServer, KindServer},
	{ErrTimeout, KindTimeout},
	{ErrRefused, KindRefused},
}

// Kind names the kind of err for metrics and logs: one of the Kind*
// constants, or "" for nil. Errors that wrap no sentinel are classified by
// their cause (deadline exceeded, connection refused, ...), else "other".
func Kind(err error) string {
	if err == nil {
		return ""
	}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.kind
		}
	}
	return rawKind(err)
}

// Retryable reports whether trying the same call again may succeed soon:
// timeouts, unreachable insurers and server errors. Client and payload
// errors are not; neither are rejections (ErrUnavailable, ErrBulkheadFull:
// the caller should come back later, not spin) nor abandoned calls.
func Retryable(err error) bool {
	switch Kind(err) {
	case KindTimeout, KindRefused, KindServer:
		return true
	}
	return false
}

// rawKind classifies an error that wraps no sentinel by its cause.
func rawKind(err error) string {
	switch {
	case errors.Is(err, context.Canceled):
		return KindCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return KindTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return KindTimeout
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, net.ErrClosed),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF):
		return KindRefused
	}
	var (
		opErr  *net.OpError
		dnsErr *net.DNSError
	)
	if errors.As(err, &opErr) || errors.As(err, &dnsErr) {
		return KindRefused
	}
	return KindOther
}

var sentinelOf = map[string]error{
	KindTimeout:  ErrTimeout,
	KindRefused:  ErrRefused,
	KindCanceled: ErrCanceled,
}

// Classify makes an attempt's error match its sentinel, for a client
// around an adapter. callerCtx is the caller's context: if it has ended,
// the attempt was abandoned, whatever the adapter says.
func Classify(callerCtx context.Context, err error) error {
	if callerCtx.Err() != nil {
		if errors.Is(err, ErrCanceled) {
			return err
		}
		return WithKind(ErrCanceled, err)
	}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return err
		}
	}
	if s, ok := sentinelOf[rawKind(err)]; ok {
		return WithKind(s, err)
	}
	return err
}

// WithKind makes err match sentinel (one of the Err* above) with
// errors.Is, as well as everything it matched before, without changing
// its message beyond a prefix.
func WithKind(sentinel, err error) error { return &kindError{sentinel: sentinel, err: err} }

// kindError adds a sentinel to an error without changing its message.
type kindError struct {
	sentinel error
	err      error
}

func (e *kindError) Error() string   { return e.sentinel.Error() + ": " + e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.sentinel, e.err} }
