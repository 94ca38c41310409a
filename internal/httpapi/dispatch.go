package httpapi

import (
	"context"
	"net/http"

	"github.com/yolda/yolda/internal/audit"
	"github.com/yolda/yolda/internal/dispatch"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
)

// Dispatch is what the API needs of dispatch: a driver's offers and
// answers, an operator's manual assignment, a driver's job progress.
type Dispatch interface {
	Offers(ctx context.Context, who identity.Principal) ([]dispatch.OfferView, error)
	Accept(ctx context.Context, who identity.Principal, offerID string) (intake.Request, error)
	Decline(ctx context.Context, who identity.Principal, offerID string) error
	Assign(ctx context.Context, who identity.Principal, requestID, driverID string) (intake.Request, error)
	Progress(ctx context.Context, who identity.Principal, requestID string, to intake.Status) (intake.Request, error)
}

var drivers = []identity.Role{identity.Driver}

// dispatchRoutes are dispatch's entries of the route table.
func (s *Server) dispatchRoutes() []route {
	return []route{
		{method: "GET", pattern: "/v1/drivers/me/offers", summary: "The offers open to the calling driver", tag: "dispatch", roles: drivers,
			handler: s.handleOffers, success: 200, result: offerList{}, errors: []int{401, 403, 429}},
		{method: "POST", pattern: "/v1/offers/{id}/accept", summary: "Take the job an offer is for", tag: "dispatch", roles: drivers,
			handler: s.handleAccept, success: 200, result: intake.Request{}, errors: []int{401, 403, 404, 409, 429}},
		{method: "POST", pattern: "/v1/offers/{id}/decline", summary: "Turn an offer down; the request goes to the next driver", tag: "dispatch",
			roles: drivers, handler: s.handleDecline, success: 204, errors: []int{401, 403, 404, 409, 429}},
		{method: "POST", pattern: "/v1/requests/{id}/assign", summary: "Give a request to a driver by hand", tag: "dispatch", roles: staff,
			handler: s.handleAssign, body: assignBody{}, success: 200, result: intake.Request{},
			errors: []int{400, 401, 403, 404, 409, 413, 415, 422, 429}},
		{method: "POST", pattern: "/v1/requests/{id}/progress", summary: "Report a step of the job (the assigned driver)", tag: "dispatch",
			roles: drivers, handler: s.handleProgress, body: progressBody{}, success: 200, result: intake.Request{},
			errors: []int{400, 401, 403, 404, 409, 413, 415, 422, 429}},
	}
}

type offerList struct {
	Items      []dispatch.OfferView `json:"items"`
	NextCursor *string              `json:"next_cursor"`
}

type assignBody struct {
	DriverID string `json:"driver_id"`
}

type progressBody struct {
	Status intake.Status `json:"status"`
}

func (s *Server) handleOffers(w http.ResponseWriter, r *http.Request) {
	items, err := s.dispatch.Offers(r.Context(), principalFrom(r.Context()))
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if items == nil {
		items = []dispatch.OfferView{}
	}
	writeJSON(w, http.StatusOK, offerList{Items: items})
}

func (s *Server) handleAccept(w http.ResponseWriter, r *http.Request) {
	req, err := s.dispatch.Accept(r.Context(), principalFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, req)
}

func (s *Server) handleDecline(w http.ResponseWriter, r *http.Request) {
	if err := s.dispatch.Decline(r.Context(), principalFrom(r.Context()), r.PathValue("id")); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleAssign(w http.ResponseWriter, r *http.Request) {
	var body assignBody
	if err := decodeJSON(w, r, 4<<10, &body, false); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	req, err := s.dispatch.Assign(r.Context(), principalFrom(r.Context()), r.PathValue("id"), body.DriverID)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	s.record(r.Context(), audit.RequestAssigned, req.ID, map[string]string{"driver_id": body.DriverID})
	writeJSON(w, http.StatusOK, req)
}

func (s *Server) handleProgress(w http.ResponseWriter, r *http.Request) {
	var body progressBody
	if err := decodeJSON(w, r, 4<<10, &body, false); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	req, err := s.dispatch.Progress(r.Context(), principalFrom(r.Context()), r.PathValue("id"), body.Status)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, req)
}
