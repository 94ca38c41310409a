package httpapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/realtime"
)

// Realtime serves WebSocket connections (realtime.Gateway). The edge
// authenticates the upgrade request like any other (header, or the
// access_token query parameter that browsers must use), then hands it
// over with the token's expiry.
type Realtime interface {
	Serve(w http.ResponseWriter, r *http.Request, who identity.Principal, expires time.Time) error
}

// realtimeRoutes: GET /v1/ws, added when the server has a gateway.
func (s *Server) realtimeRoutes() []route {
	return []route{
		{method: "GET", pattern: "/v1/ws", summary: "Open the realtime WebSocket (request status, driver locations, offers; drivers send locations)", tag: "realtime",
			handler: s.handleWS, tokenInQuery: true, longLived: true, success: http.StatusSwitchingProtocols,
			query:  []param{{name: "access_token", kind: "string", description: "the bearer token, for browsers (which cannot set the Authorization header on a WebSocket)"}},
			errors: []int{401, 403, 422, 429, 503}},
	}
}

func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	token, _ := tokenOf(r, true) // authenticate found it
	expires, err := s.tokens.Expiry(token)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	switch err := s.realtime.Serve(w, r, principalFrom(r.Context()), expires); {
	case errors.Is(err, realtime.ErrOrigin):
		s.writeProblem(w, r, newProblem(http.StatusForbidden, "origin-refused", "Origin not allowed",
			"This page's origin may not open a WebSocket here (YOLDA_WS_ALLOWED_ORIGINS)."))
	case errors.Is(err, realtime.ErrBusy):
		p := newProblem(http.StatusServiceUnavailable, "realtime-busy", "Realtime busy",
			"This server holds as many connections as it may, or is stopping; retry shortly, another may answer.")
		p.retryAfter = time.Second
		s.writeProblem(w, r, p)
	case err != nil:
		s.writeProblem(w, r, err)
	}
}
