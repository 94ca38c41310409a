package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// smallBody caps the bodies of the routes that take a few short fields
// (login, cancel, an insurance decision).
const smallBody = 4 << 10

// DefaultBodyReadTimeout bounds the reading of one request body.
const DefaultBodyReadTimeout = 5 * time.Second

// readBody reads the whole body, at most limit bytes, before anything
// else runs, under a read deadline of its own: a body of a few KiB has no
// reason to take seconds, and one that trickles in is cut off with 408.
// It runs outside the in-flight budget (shed), so that slow senders hold a
// connection, which the per-address connection cap bounds, but never the
// slots that other users' requests need. The deadline is lifted once the
// body is in, so that a long handler is not cancelled by the connection's
// read deadline. Reverse proxies do the same (Nginx buffers request bodies
// before passing them on).
func (s *Server) readBody(limit int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if r.Body == nil || r.Body == http.NoBody {
			_ = rc.SetReadDeadline(time.Time{})
			next.ServeHTTP(w, r)
			return
		}
		// Not every ResponseWriter can (httptest.ResponseRecorder); the
		// server's always can.
		_ = rc.SetReadDeadline(time.Now().Add(s.opts.BodyReadTimeout))
		body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
		if err == nil && int64(len(body)) > limit {
			err = &http.MaxBytesError{Limit: limit}
		}
		if err != nil {
			w.Header().Set("Connection", "close")
			s.writeProblem(w, r, s.bodyProblem(err, limit))
			return
		}
		_ = rc.SetReadDeadline(time.Time{})
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

func (s *Server) bodyProblem(err error, limit int64) *Problem {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return tooLarge(limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.metrics.slowBodies.Inc()
		return newProblem(http.StatusRequestTimeout, "body-timeout", "Request timeout",
			fmt.Sprintf("The body did not arrive within %s.", s.opts.BodyReadTimeout))
	}
	return newProblem(http.StatusBadRequest, "unreadable-body", "Unreadable body", "The body could not be read.")
}

func tooLarge(limit int64) *Problem {
	return newProblem(http.StatusRequestEntityTooLarge, "too-large", "Body too large", fmt.Sprintf("The body may be at most %d bytes.", limit))
}
