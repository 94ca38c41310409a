package healthboard

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/yolda/yolda/internal/insurance/resilient"
)

// Snapshot is one process's view of its insurers at one moment.
type Snapshot struct {
	// Process names the process (its key on the board).
	Process string
	// At is when the snapshot was taken (for the board's entries, when
	// the board stored it).
	At       time.Time
	Insurers []resilient.Health
}

// wireHealth is resilient.Health as it travels: durations in nanoseconds,
// so nothing is rounded on the way.
type wireHealth struct {
	Code         string  `json:"code"`
	Name         string  `json:"name"`
	Breaker      string  `json:"breaker"`
	Calls        uint64  `json:"calls"`
	Errors       uint64  `json:"errors"`
	Recent       int     `json:"recent"`
	ErrorRate    float64 `json:"error_rate"`
	LatencyP50Ns int64   `json:"latency_p50_ns"`
	LatencyP99Ns int64   `json:"latency_p99_ns"`
	InFlight     int     `json:"in_flight"`
}

type wireSnapshot struct {
	Insurers []wireHealth `json:"insurers"`
}

// encode renders the insurers' health as posted on the board.
func encode(hs []resilient.Health) ([]byte, error) {
	w := wireSnapshot{Insurers: make([]wireHealth, len(hs))}
	for i, h := range hs {
		w.Insurers[i] = wireHealth{
			Code: h.Code, Name: h.Name, Breaker: h.Breaker, Calls: h.Calls, Errors: h.Errors, Recent: h.Recent,
			ErrorRate: h.ErrorRate, LatencyP50Ns: int64(h.LatencyP50), LatencyP99Ns: int64(h.LatencyP99), InFlight: h.InFlight,
		}
	}
	return json.Marshal(w)
}

// Decode reads a snapshot posted by process, stored on the board at at.
func Decode(process string, at time.Time, data []byte) (Snapshot, error) {
	var w wireSnapshot
	if err := json.Unmarshal(data, &w); err != nil {
		return Snapshot{}, fmt.Errorf("insurer health of %s: %w", process, err)
	}
	s := Snapshot{Process: process, At: at, Insurers: make([]resilient.Health, len(w.Insurers))}
	for i, h := range w.Insurers {
		s.Insurers[i] = resilient.Health{
			Code: h.Code, Name: h.Name, Breaker: h.Breaker, Calls: h.Calls, Errors: h.Errors, Recent: h.Recent,
			ErrorRate: h.ErrorRate, LatencyP50: time.Duration(h.LatencyP50Ns), LatencyP99: time.Duration(h.LatencyP99Ns), InFlight: h.InFlight,
		}
	}
	return s, nil
}
