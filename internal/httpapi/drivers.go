package httpapi

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/validate"
)

// Fleet is what the API needs of the fleet service.
type Fleet interface {
	SetAvailability(ctx context.Context, who identity.Principal, a fleet.Availability) (fleet.Driver, error)
	ReportPosition(ctx context.Context, who identity.Principal, r fleet.PositionReport) (fleet.Position, error)
	List(ctx context.Context, who identity.Principal, f fleet.DriverFilter) (fleet.Page, error)
}

var driverOnly = []identity.Role{identity.Driver}

type availabilityBody struct {
	Availability fleet.Availability `json:"availability"`
}

type availabilityAnswer struct {
	ID           string             `json:"id"`
	Availability fleet.Availability `json:"availability"`
}

type driverList struct {
	Items      []fleet.Listed `json:"items"`
	NextCursor *string        `json:"next_cursor"`
}

// driverRoutes are the fleet's operations; routeTable adds them when the
// server has a fleet.
func (s *Server) driverRoutes() []route {
	return []route{
		{method: "PUT", pattern: "/v1/drivers/me/availability", summary: "Go online or offline (drivers)", tag: "drivers",
			roles: driverOnly, handler: s.handleAvailability, body: availabilityBody{}, maxBody: smallBody, success: 200, result: availabilityAnswer{},
			errors: []int{400, 401, 403, 404, 413, 415, 422, 429}},
		{method: "POST", pattern: "/v1/drivers/me/location", summary: "Report the driver's position (drivers)", tag: "drivers",
			roles: driverOnly, handler: s.handleLocation, body: fleet.PositionReport{}, maxBody: smallBody, success: 204,
			errors: []int{400, 401, 403, 404, 413, 415, 422, 429}},
		{method: "GET", pattern: "/v1/drivers", summary: "List drivers with their state and last position", tag: "drivers",
			roles: staff, handler: s.handleListDrivers, success: 200, result: driverList{}, query: driverListParams(),
			errors: []int{401, 403, 422, 429}},
	}
}

func driverListParams() []param {
	return []param{
		{name: "availability", kind: "string", enum: []string{string(fleet.Online), string(fleet.Offline)}},
		{name: "capability", kind: "string", description: "drivers able to do this service", enum: intake.ServiceType("").Enum()},
		{name: "provider", kind: "string", description: "provider code"},
		limitParam,
		cursorParam,
	}
}

func (s *Server) handleAvailability(w http.ResponseWriter, r *http.Request) {
	var body availabilityBody
	if err := decodeJSON(w, r, smallBody, &body, false); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	d, err := s.fleet.SetAvailability(r.Context(), principalFrom(r.Context()), body.Availability)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, availabilityAnswer{ID: d.ID, Availability: d.Availability})
}

func (s *Server) handleLocation(w http.ResponseWriter, r *http.Request) {
	var body fleet.PositionReport
	if err := decodeJSON(w, r, smallBody, &body, false); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if _, err := s.fleet.ReportPosition(r.Context(), principalFrom(r.Context()), body); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleListDrivers(w http.ResponseWriter, r *http.Request) {
	f, err := parseDriverFilter(r)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	page, err := s.fleet.List(r.Context(), principalFrom(r.Context()), f)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	out := driverList{Items: page.Items}
	if out.Items == nil {
		out.Items = []fleet.Listed{}
	}
	if page.NextCursor != "" {
		c := encodeDriverCursor(page.NextCursor)
		out.NextCursor = &c
	}
	writeJSON(w, http.StatusOK, out)
}

// Driver cursors wrap the last id seen, like request cursors, under their
// own prefix so that one list's cursor is refused by the other.
func encodeDriverCursor(lastID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("d1:" + lastID))
}

func decodeDriverCursor(c string) (string, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", false
	}
	id, ok := strings.CutPrefix(string(raw), "d1:")
	return id, ok && strings.HasPrefix(id, "usr_") && len(id) <= 64
}

// parseDriverFilter reads the filters of GET /v1/drivers; checkQuery has
// already refused parameters the route does not declare.
func parseDriverFilter(r *http.Request) (fleet.DriverFilter, error) {
	q := r.URL.Query()
	var f fleet.DriverFilter
	var errs validate.Errors
	if v := q.Get("availability"); v != "" {
		f.Availability = fleet.Availability(v)
		validate.OneOf(&errs, "availability", f.Availability, fleet.Availabilities)
	}
	if v := q.Get("capability"); v != "" {
		f.Capability = intake.ServiceType(v)
		validate.OneOf(&errs, "capability", f.Capability, intake.ServiceTypes)
	}
	if v := q.Get("provider"); v != "" {
		if !fleet.ValidProviderCode(v) {
			errs.Add("provider", "is not a provider code")
		}
		f.Provider = v
	}
	f.Limit = queryLimit(&errs, q)
	if v := q.Get("cursor"); v != "" {
		id, ok := decodeDriverCursor(v)
		if !ok {
			errs.Add("cursor", "is not a cursor this API gave out")
		}
		f.After = id
	}
	return f, errs.Err()
}
