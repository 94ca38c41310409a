package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/yolda/yolda/internal/auth"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/geo"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
)

// TrackingLinks issues and checks the customer's tracking links: tokens
// scoped to one request, read and cancel only (auth.TrackingLinks).
type TrackingLinks interface {
	Issue(requestID, ownerID string) (string, time.Time, error)
	Verify(token string) (auth.Tracking, error)
}

// Approaches tells where an assigned driver is and how far from the
// customer (fleet.Service.Toward).
type Approaches interface {
	Toward(ctx context.Context, driverID string, at geo.Point) (fleet.Approach, bool, error)
}

// trackedRequest is a request as its tracking page shows it: what the
// customer needs and nothing of the policy, the contact or the notes (a
// link can be forwarded).
type trackedRequest struct {
	ID          string                 `json:"id"`
	Status      intake.Status          `json:"status"`
	ServiceType intake.ServiceType     `json:"service_type"`
	Location    intake.Location        `json:"location"`
	Destination *intake.Location       `json:"destination"`
	Insurance   intake.InsuranceStatus `json:"insurance_status"`
	Driver      *trackedDriver         `json:"driver"`
	Timeline    []intake.TimelineEntry `json:"timeline"`
	// CanCancel is whether the customer may still call it off.
	CanCancel bool      `json:"can_cancel"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// LinkExpiresAt is when the link stops working.
	LinkExpiresAt time.Time `json:"link_expires_at"`
}

// trackedDriver is what the customer sees of the driver: a name, a plate
// and where the truck is; no id, no phone.
type trackedDriver struct {
	Name         string           `json:"name"`
	VehiclePlate string           `json:"vehicle_plate"`
	AssignedAt   time.Time        `json:"assigned_at"`
	ETASeconds   int              `json:"eta_seconds"`
	Location     *intake.Position `json:"location"`
}

type trackingLinkAnswer struct {
	// URL is the page to send the customer, relative to this server; the
	// token travels in its fragment, which browsers never send to a server
	// (so it stays out of access logs and proxies).
	URL       string    `json:"url"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// trackingRoutes are the tracking link's operations; routeTable adds them
// when the server has a TrackingLinks.
func (s *Server) trackingRoutes() []route {
	return []route{
		{method: "POST", pattern: "/v1/requests/{id}/tracking-link", summary: "A link to the request's tracking page that needs no login (for an SMS)", tag: "tracking",
			roles: requester, object: objectRequest, handler: s.handleTrackingLink, success: 201, result: trackingLinkAnswer{},
			errors: []int{401, 403, 404, 429}},
		{method: "GET", pattern: "/v1/track/{id}", summary: "The request as its tracking page shows it (tracking token as the bearer)", tag: "tracking",
			tracking: true, object: objectRequest, handler: s.handleTrack, success: 200, result: trackedRequest{}, errors: []int{401, 404, 429}},
		{method: "POST", pattern: "/v1/track/{id}/cancel", summary: "Cancel the request from its tracking page (tracking token as the bearer)", tag: "tracking",
			tracking: true, object: objectRequest, handler: s.handleTrackCancel, body: cancelBody{}, maxBody: smallBody, example: cancelBody{Reason: "found help"},
			success: 200, result: trackedRequest{}, errors: []int{400, 401, 404, 409, 413, 415, 422, 429}},
	}
}

func (s *Server) handleTrackingLink(w http.ResponseWriter, r *http.Request) {
	who := principalFrom(r.Context())
	req, err := s.intake.Get(r.Context(), who, r.PathValue("id"))
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	// The link acts for the request's owner (a customer, or the operator
	// who took the call), with a customer's rights only.
	token, exp, err := s.tracking.Issue(req.ID, req.OwnerID)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, trackingLinkAnswer{URL: "/track/" + req.ID + "#t=" + token, Token: token, ExpiresAt: exp})
}

// authenticateTracking admits a tracking token for the path's request and
// nothing else: a link for another request answers 404, as a request that
// does not exist. The caller then acts as the request's owner, a customer.
func (s *Server) authenticateTracking(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearerToken(r)
		if !ok {
			s.writeProblem(w, r, auth.ErrInvalidToken)
			return
		}
		g, err := s.tracking.Verify(token)
		if err != nil {
			s.writeProblem(w, r, err)
			return
		}
		if g.RequestID != r.PathValue("id") {
			s.writeProblem(w, r, intake.ErrNotFound)
			return
		}
		if ok, wait := s.userLimit.Allow("track:" + g.RequestID); !ok {
			s.writeProblem(w, r, tooManyRequests(wait))
			return
		}
		p := identity.Principal{UserID: g.OwnerID, Username: "tracking-link", Role: identity.Customer}
		ctx := context.WithValue(context.WithValue(r.Context(), keyPrincipal, p), keyTracking, g)
		if al, ok := ctx.Value(keyAccessLog).(*accessLog); ok {
			al.user = g.OwnerID
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func (s *Server) handleTrack(w http.ResponseWriter, r *http.Request) {
	req, err := s.intake.Get(r.Context(), principalFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	s.writeTracked(w, r, req)
}

func (s *Server) handleTrackCancel(w http.ResponseWriter, r *http.Request) {
	var body cancelBody
	if err := decodeJSON(w, r, smallBody, &body, true); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	req, err := s.intake.Cancel(r.Context(), principalFrom(r.Context()), r.PathValue("id"), body.Reason)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	s.writeTracked(w, r, req)
}

// writeTracked answers the customer's view of req, with the driver's
// position and arrival estimate while the driver is on the way.
func (s *Server) writeTracked(w http.ResponseWriter, r *http.Request, req intake.Request) {
	g, _ := r.Context().Value(keyTracking).(auth.Tracking)
	out := trackedRequest{
		ID: req.ID, Status: req.Status, ServiceType: req.ServiceType, Location: req.Location, Destination: req.Destination,
		Insurance: req.Insurance.Status, Timeline: req.Timeline, CanCancel: req.Status.CustomerMayCancel(),
		CreatedAt: req.CreatedAt, UpdatedAt: req.UpdatedAt, LinkExpiresAt: g.ExpiresAt,
	}
	if a := req.Assignment; a != nil && req.Status.Active() {
		d := &trackedDriver{Name: a.DriverName, VehiclePlate: a.VehiclePlate, AssignedAt: a.AssignedAt, ETASeconds: a.ETASeconds, Location: a.DriverLocation}
		if s.approaches != nil {
			ap, ok, err := s.approaches.Toward(r.Context(), a.DriverID, geo.Point{Lat: req.Location.Lat, Lng: req.Location.Lng})
			if err != nil {
				s.writeProblem(w, r, err)
				return
			}
			if ok {
				d.Location = &ap.Position
				if req.Status == intake.StatusAssigned || req.Status == intake.StatusEnRoute {
					d.ETASeconds = int(ap.ETA.Seconds())
				}
			}
		}
		if req.Status != intake.StatusAssigned && req.Status != intake.StatusEnRoute {
			d.ETASeconds = 0 // arrived: nothing left to wait for
		}
		out.Driver = d
	}
	if out.Timeline == nil {
		out.Timeline = []intake.TimelineEntry{}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
}
