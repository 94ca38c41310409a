package httpapi

import (
	"context"
	"net/http"
	"time"

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

// insurerHealth is the JSON of one insurer in GET /v1/insurers: its
// health merged over the processes that call it (the worst breaker, the
// counts summed), and each one's report.
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
	// PendingChecks counts the requests whose check with this insurer can
	// still settle; OldestPendingAt is the oldest one's creation (null
	// when none). Both need Deps.Pending; without it they are 0 and null.
	PendingChecks   int        `json:"pending_checks"`
	OldestPendingAt *time.Time `json:"oldest_pending_at"`
	// Reports are what each process calling the insurer reported.
	Reports []insurerReport `json:"reports"`
}

// insurerReport is one process's view of one insurer.
type insurerReport struct {
	Process      string    `json:"process"`
	ReportedAt   time.Time `json:"reported_at"`
	Breaker      string    `json:"breaker"`
	Calls        uint64    `json:"calls"`
	Errors       uint64    `json:"errors"`
	ErrorRate    float64   `json:"error_rate"`
	LatencyP50Ms float64   `json:"latency_p50_ms"`
	LatencyP99Ms float64   `json:"latency_p99_ms"`
	InFlight     int       `json:"in_flight"`
}

// insurerReporter is a process whose report the answer merges.
type insurerReporter struct {
	Process    string    `json:"process"`
	ReportedAt time.Time `json:"reported_at"`
	// Self: the process that answered this request.
	Self bool `json:"self"`
}

// PendingChecks counts the insurance checks that can still settle, per
// insurer (the operational store).
type PendingChecks interface {
	PendingInsurance(ctx context.Context) ([]intake.PendingChecks, error)
}

type insurerList struct {
	Items      []insurerHealth `json:"items"`
	NextCursor *string         `json:"next_cursor"`
	// Source is "board" (every live process's reports, from the health
	// board) or "local" (this process's own clients only: SourceError
	// says why).
	Source      string            `json:"source"`
	SourceError *string           `json:"source_error"`
	Processes   []insurerReporter `json:"processes"`
}

// Sources of GET /v1/insurers.
const (
	insurersFromBoard = "board"
	insurersLocal     = "local"
)

// millis renders a latency as fractional milliseconds, to the microsecond.
func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

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
	pending := map[string]intake.PendingChecks{}
	if s.pending != nil {
		counts, err := s.pending.PendingInsurance(r.Context())
		if err != nil {
			s.writeProblem(w, r, err)
			return
		}
		for _, c := range counts {
			pending[c.Insurer] = c
		}
	}
	out.Source, out.Processes = insurersLocal, []insurerReporter{}
	if s.insurers == nil {
		msg := "no insurers configured in this process"
		out.SourceError = &msg
		writeJSON(w, http.StatusOK, out)
		return
	}
	answer := s.insurers.Health()
	if answer.BoardErr == nil {
		out.Source = insurersFromBoard
	} else {
		msg := answer.BoardErr.Error()
		out.SourceError = &msg
	}
	for _, p := range answer.Reporters {
		out.Processes = append(out.Processes, insurerReporter{Process: p.Process, ReportedAt: p.At.UTC(), Self: p.Self})
	}
	for _, h := range answer.Insurers {
		ih := insurerHealth{
			Code: h.Code, Name: h.Name, Breaker: h.Breaker, Calls: h.Calls, Errors: h.Errors, ErrorRate: h.ErrorRate,
			LatencyP50Ms: millis(h.LatencyP50), LatencyP99Ms: millis(h.LatencyP99), InFlight: h.InFlight,
			Reports: make([]insurerReport, len(h.Reports)),
		}
		for i, r := range h.Reports {
			ih.Reports[i] = insurerReport{
				Process: r.Process, ReportedAt: r.At.UTC(), Breaker: r.Breaker, Calls: r.Calls, Errors: r.Errors, ErrorRate: r.ErrorRate,
				LatencyP50Ms: millis(r.LatencyP50), LatencyP99Ms: millis(r.LatencyP99), InFlight: r.InFlight,
			}
		}
		if p, ok := pending[h.Code]; ok && p.Count > 0 {
			ih.PendingChecks = p.Count
			oldest := p.Oldest.UTC()
			ih.OldestPendingAt = &oldest
		}
		out.Items = append(out.Items, ih)
	}
	writeJSON(w, http.StatusOK, out)
}
