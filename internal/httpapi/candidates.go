package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/yolda/yolda/internal/dispatch"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/geo"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/validate"
)

// OfferHistory reads the offers made for requests (dispatch.Store).
type OfferHistory interface {
	Snapshots(ctx context.Context, requestIDs []string) ([]dispatch.Snapshot, error)
}

// offerMade is one offer of a request, as the operations panel lists it.
type offerMade struct {
	OfferID      string               `json:"offer_id"`
	DriverID     string               `json:"driver_id"`
	DriverName   string               `json:"driver_name"`
	VehiclePlate string               `json:"vehicle_plate"`
	Round        int                  `json:"round"`
	Status       dispatch.OfferStatus `json:"status"`
	DistanceM    int                  `json:"distance_m"`
	ETASeconds   int                  `json:"eta_seconds"`
	CreatedAt    time.Time            `json:"created_at"`
	ExpiresAt    time.Time            `json:"expires_at"`
	DecidedAt    *time.Time           `json:"decided_at"`
}

type offerMadeList struct {
	Items      []offerMade `json:"items"`
	NextCursor *string     `json:"next_cursor"`
}

// Candidates finds the drivers who could take a request now, by arrival
// estimate, and names them (fleet.Service).
type Candidates interface {
	Candidates(ctx context.Context, q fleet.CandidateQuery) ([]fleet.Ranked, error)
	Driver(ctx context.Context, id string) (fleet.Driver, error)
}

// candidate is a driver an operator may assign by hand.
type candidate struct {
	DriverID     string          `json:"driver_id"`
	Name         string          `json:"name"`
	VehiclePlate string          `json:"vehicle_plate"`
	Position     intake.Position `json:"position"`
	DistanceM    int             `json:"distance_m"`
	ETASeconds   int             `json:"eta_seconds"`
}

type candidateList struct {
	Items      []candidate `json:"items"`
	NextCursor *string     `json:"next_cursor"`
}

// Bounds of the manual-assignment search.
const (
	defaultCandidateRadiusKm = 50
	maxCandidateRadiusKm     = 500
	defaultCandidates        = 8
	maxCandidates            = 50
)

func (s *Server) candidateRoutes() []route {
	rs := []route{
		{method: "GET", pattern: "/v1/requests/{id}/candidates", summary: "The nearest free drivers able to do the request, by arrival estimate (for manual assignment)", tag: "dispatch",
			roles: staff, object: objectRequest, handler: s.handleCandidates, success: 200, result: candidateList{},
			query: []param{
				{name: "radius_km", kind: "integer", description: "1-" + strconv.Itoa(maxCandidateRadiusKm) + ", default " + strconv.Itoa(defaultCandidateRadiusKm)},
				{name: "limit", kind: "integer", description: "1-" + strconv.Itoa(maxCandidates) + ", default " + strconv.Itoa(defaultCandidates)},
			},
			errors: []int{401, 403, 404, 422, 429}},
	}
	if s.offerHistory != nil {
		rs = append(rs, route{method: "GET", pattern: "/v1/requests/{id}/offers", summary: "Every offer made for a request, oldest first", tag: "dispatch",
			roles: staff, object: objectRequest, handler: s.handleRequestOffers, success: 200, result: offerMadeList{}, errors: []int{401, 403, 404, 429}})
	}
	return rs
}

func (s *Server) handleRequestOffers(w http.ResponseWriter, r *http.Request) {
	req, err := s.intake.Get(r.Context(), principalFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	snaps, err := s.offerHistory.Snapshots(r.Context(), []string{req.ID})
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	out := offerMadeList{Items: []offerMade{}}
	names := map[string]fleet.Driver{}
	for _, snap := range snaps {
		for _, o := range snap.Offers {
			d, ok := names[o.DriverID]
			if !ok {
				if d, err = s.candidates.Driver(r.Context(), o.DriverID); err != nil {
					s.writeProblem(w, r, err)
					return
				}
				names[o.DriverID] = d
			}
			out.Items = append(out.Items, offerMade{
				OfferID: o.ID, DriverID: o.DriverID, DriverName: d.Name, VehiclePlate: d.VehiclePlate, Round: o.Round, Status: o.Status,
				DistanceM: o.DistanceM, ETASeconds: o.ETASeconds, CreatedAt: o.CreatedAt, ExpiresAt: o.ExpiresAt, DecidedAt: o.DecidedAt,
			})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleCandidates(w http.ResponseWriter, r *http.Request) {
	var errs validate.Errors
	radius := intParam(&errs, r, "radius_km", defaultCandidateRadiusKm, maxCandidateRadiusKm)
	limit := intParam(&errs, r, "limit", defaultCandidates, maxCandidates)
	if err := errs.Err(); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	req, err := s.intake.Get(r.Context(), principalFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	ranked, err := s.candidates.Candidates(r.Context(), fleet.CandidateQuery{
		At: geo.Point{Lat: req.Location.Lat, Lng: req.Location.Lng}, Service: req.ServiceType, RadiusKm: float64(radius), Limit: limit,
	})
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	out := candidateList{Items: make([]candidate, 0, len(ranked))}
	for _, c := range ranked {
		d, err := s.candidates.Driver(r.Context(), c.DriverID)
		if err != nil {
			s.writeProblem(w, r, err)
			return
		}
		out.Items = append(out.Items, candidate{
			DriverID: c.DriverID, Name: d.Name, VehiclePlate: d.VehiclePlate,
			Position:  intake.Position{Lat: c.Fix.Lat, Lng: c.Fix.Lng, At: c.Fix.At},
			DistanceM: int(c.DistanceKm * 1000), ETASeconds: int(c.ETA.Seconds()),
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// intParam reads an optional integer query parameter in [1, hi].
func intParam(errs *validate.Errors, r *http.Request, name string, def, hi int) int {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > hi {
		errs.Add(name, "must be an integer from 1 to "+strconv.Itoa(hi))
	}
	return n
}
