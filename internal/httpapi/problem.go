package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/auth"
	"github.com/yolda/yolda/internal/deadletter"
	"github.com/yolda/yolda/internal/dispatch"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/validate"
)

// Problem is an RFC 9457 problem document.
type Problem struct {
	Type      string                `json:"type"`
	Title     string                `json:"title"`
	Status    int                   `json:"status"`
	Detail    string                `json:"detail,omitempty"`
	Instance  string                `json:"instance,omitempty"`
	RequestID string                `json:"request_id,omitempty"`
	Errors    []validate.FieldError `json:"errors,omitempty"`

	// retryAfter, when set, becomes the Retry-After header.
	retryAfter time.Duration
}

func (p *Problem) Error() string { return p.Title + ": " + p.Detail }

// problemTypeBase prefixes every problem type; docs/api.md lists them
// (TestProblemTypesAreDocumented keeps it so).
const problemTypeBase = "https://yolda.dev/problems/"

func newProblem(status int, slug, title, detail string) *Problem {
	return &Problem{Type: problemTypeBase + slug, Title: title, Status: status, Detail: detail}
}

// problemFor is the one table that maps errors to HTTP answers. Anything it
// does not know is a 500 whose detail never reaches the client.
func problemFor(err error) *Problem {
	var p *Problem
	var fields validate.Errors
	var throttled *account.ThrottledError
	switch {
	case errors.As(err, &p):
		return p
	case errors.As(err, &fields):
		p := newProblem(http.StatusUnprocessableEntity, "validation", "Invalid input", "One or more fields are invalid.")
		p.Errors = fields
		return p
	case errors.Is(err, intake.ErrNotFound), errors.Is(err, account.ErrNotFound), errors.Is(err, deadletter.ErrNotFound),
		errors.Is(err, dispatch.ErrOfferNotFound), errors.Is(err, fleet.ErrNotFound):
		return newProblem(http.StatusNotFound, "not-found", "Not found", "No such resource.")
	case errors.Is(err, intake.ErrConflict):
		return newProblem(http.StatusConflict, "conflict", "Conflict", err.Error())
	case errors.Is(err, dispatch.ErrOfferExpired):
		return newProblem(http.StatusConflict, "offer-expired", "Offer expired", "The offer's deadline has passed.")
	case errors.Is(err, dispatch.ErrOfferClosed):
		return newProblem(http.StatusConflict, "offer-taken", "Offer no longer open", err.Error())
	case errors.Is(err, dispatch.ErrDriverBusy):
		return newProblem(http.StatusConflict, "driver-busy", "Driver busy", "The driver is on another job.")
	case errors.Is(err, intake.ErrIdempotencyMismatch):
		p := newProblem(http.StatusUnprocessableEntity, "idempotency-mismatch", "Idempotency key reused",
			"This Idempotency-Key was used before with a different body.")
		p.Errors = []validate.FieldError{{Field: "Idempotency-Key", Message: "was used with a different body"}}
		return p
	case errors.Is(err, intake.ErrForbidden), errors.Is(err, fleet.ErrForbidden):
		return newProblem(http.StatusForbidden, "forbidden", "Forbidden", "Your role may not do this.")
	case errors.Is(err, intake.ErrOverloaded), errors.Is(err, intake.ErrClosed):
		p := newProblem(http.StatusServiceUnavailable, "overloaded", "Service busy", "Too many requests in flight; retry shortly.")
		p.retryAfter = time.Second
		return p
	case errors.Is(err, account.ErrBadCredentials):
		return newProblem(http.StatusUnauthorized, "bad-credentials", "Unauthorized", "Wrong username or password.")
	case errors.Is(err, auth.ErrInvalidToken), errors.Is(err, account.ErrTokenRefused):
		return newProblem(http.StatusUnauthorized, "unauthorized", "Unauthorized", "A valid bearer token is required.")
	case errors.As(err, &throttled):
		p := newProblem(http.StatusTooManyRequests, "login-throttled", "Too many failed logins",
			"Too many failed logins for this account lately; retry after the time given in Retry-After.")
		p.retryAfter = max(throttled.RetryAfter, time.Second)
		return p
	case errors.Is(err, account.ErrBusy):
		p := newProblem(http.StatusServiceUnavailable, "overloaded", "Service busy", "Too many logins at once; retry shortly.")
		p.retryAfter = time.Second
		return p
	case errors.Is(err, account.ErrForbidden):
		return newProblem(http.StatusForbidden, "forbidden", "Forbidden", "Your role may not do this.")
	case errors.Is(err, account.ErrConflict):
		return newProblem(http.StatusConflict, "conflict", "Conflict", err.Error())
	case errors.Is(err, account.ErrUsernameTaken):
		p := newProblem(http.StatusConflict, "username-taken", "Username taken", "Another account has this username.")
		p.Errors = []validate.FieldError{{Field: "username", Message: "is taken"}}
		return p
	}
	return newProblem(http.StatusInternalServerError, "internal", "Internal error", "Something went wrong on our side; the request id helps us find it.")
}

// writeProblem answers with err as a problem document. Server errors are
// logged here, once, with the request id; clients never see their text.
func (s *Server) writeProblem(w http.ResponseWriter, r *http.Request, err error) {
	p := *problemFor(err)
	p.Instance = r.URL.Path
	p.RequestID = requestIDFrom(r.Context())
	if p.Status >= 500 && p.Status != http.StatusServiceUnavailable {
		s.log.ErrorContext(r.Context(), "request failed", "err", err, "request_id", p.RequestID, "path", r.URL.Path)
	}
	if p.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="yolda"`)
	}
	if p.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((p.retryAfter+time.Second-1)/time.Second)))
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
