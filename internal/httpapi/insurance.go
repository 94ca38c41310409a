package httpapi

import (
	"net/http"

	"github.com/yolda/yolda/internal/audit"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/validate"
)

type insuranceDecision struct {
	Decision decision `json:"decision" validate:"required"`
	Reason   string   `json:"reason,omitempty" validate:"required_if=decision:rejected"`
}

// decision is an operator's insurance decision: one of intake.Decisions.
type decision intake.InsuranceStatus

// Enum lists the decisions (validate.Enumerated).
func (decision) Enum() []string {
	out := make([]string, len(intake.Decisions))
	for i, d := range intake.Decisions {
		out[i] = string(d)
	}
	return out
}

// insurerHealth is the JSON of one insurer in GET /v1/insurers.
type insurerHealth struct {
	Code         string  `json:"code"`
	Name         string  `json:"name"`
	Breaker      string  `json:"breaker"`
	Calls        uint64  `json:"calls"`
	Errors       uint64  `json:"errors"`
	ErrorRate    float64 `json:"error_rate"`
	LatencyP50Ms float64 `json:"latency_p50_ms"`
	LatencyP99Ms float64 `json:"latency_p99_ms"`
	InFlight     int     `json:"in_flight"`
}

type insurerList struct {
	Items      []insurerHealth `json:"items"`
	NextCursor *string         `json:"next_cursor"`
}

func (s *Server) handleDecideInsurance(w http.ResponseWriter, r *http.Request) {
	var body insuranceDecision
	if err := decodeJSON(w, r, smallBody, &body, false); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	var errs validate.Errors
	validate.Struct(&errs, "", &body)
	if err := errs.Err(); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	req, err := s.intake.DecideInsurance(r.Context(), principalFrom(r.Context()), r.PathValue("id"), intake.InsuranceStatus(body.Decision), body.Reason)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	s.record(r.Context(), audit.InsuranceDecided, req.ID, map[string]string{"decision": string(body.Decision)})
	writeJSON(w, http.StatusOK, req)
}

func (s *Server) handleInsurers(w http.ResponseWriter, r *http.Request) {
	out := insurerList{Items: []insurerHealth{}}
	if s.insurers != nil {
		for _, h := range s.insurers.Health() {
			out.Items = append(out.Items, insurerHealth{
				Code: h.Code, Name: h.Name, Breaker: h.Breaker, Calls: h.Calls, Errors: h.Errors, ErrorRate: h.ErrorRate,
				LatencyP50Ms: float64(h.LatencyP50.Microseconds()) / 1000, LatencyP99Ms: float64(h.LatencyP99.Microseconds()) / 1000,
				InFlight: h.InFlight,
			})
		}
	}
	writeJSON(w, http.StatusOK, out)
}
