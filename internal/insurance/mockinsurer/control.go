package mockinsurer

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// controlView is the JSON form of the behaviour on /control. Credentials are
// shown by kind only: /control is unauthenticated.
type controlView struct {
	Mode      string  `json:"mode"`
	Latency   string  `json:"latency"`
	Jitter    string  `json:"jitter"`
	ErrorRate float64 `json:"error_rate"`
	DownStyle string  `json:"down_style"`
	Seed      uint64  `json:"seed"`
	Auth      string  `json:"auth"`
	Stats     Stats   `json:"stats"`
}

// controlRequest is a partial update: absent fields keep their value.
// Credentials cannot be changed over HTTP, so /control cannot be used to
// switch authentication off under a test that checks it.
type controlRequest struct {
	Mode      *string  `json:"mode"`
	Latency   *string  `json:"latency"`
	Jitter    *string  `json:"jitter"`
	ErrorRate *float64 `json:"error_rate"`
	DownStyle *string  `json:"down_style"`
	Seed      *uint64  `json:"seed"`
}

func (s *Server) view(b Behaviour) controlView {
	return controlView{
		Mode: b.Mode, Latency: b.Latency.String(), Jitter: b.Jitter.String(),
		ErrorRate: b.ErrorRate, DownStyle: b.DownStyle, Seed: b.Seed,
		Auth: authKind(b), Stats: s.Stats(),
	}
}

func (s *Server) getControl(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.view(s.Behaviour()))
}

func (s *Server) postControl(w http.ResponseWriter, r *http.Request) {
	var req controlRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields() // a typo such as "errorrate" must not pass as a no-op
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad control body: " + err.Error()})
		return
	}
	if dec.More() {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad control body: data after the object"})
		return
	}

	// Read, modify and commit under one lock, so that two partial updates
	// racing each other cannot undo one another's fields.
	s.mu.Lock()
	b, err := req.apply(s.b)
	if err == nil {
		err = b.Validate()
	}
	if err != nil {
		s.mu.Unlock()
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	b = s.commitLocked(b)
	s.mu.Unlock()

	s.logChange(b)
	writeJSON(w, http.StatusOK, s.view(b))
}

func (req controlRequest) apply(b Behaviour) (Behaviour, error) {
	if req.Mode != nil {
		b.Mode = *req.Mode
		if b.Mode == "" {
			return b, errors.New(`mode: empty; want one of ok, down, hang, garbage`)
		}
	}
	if req.DownStyle != nil {
		b.DownStyle = *req.DownStyle
	}
	for _, f := range []struct {
		name string
		in   *string
		out  *time.Duration
	}{{"latency", req.Latency, &b.Latency}, {"jitter", req.Jitter, &b.Jitter}} {
		if f.in == nil {
			continue
		}
		d, err := time.ParseDuration(*f.in)
		if err != nil {
			return b, fmt.Errorf("%s: %q is not a duration such as \"50ms\"", f.name, *f.in)
		}
		*f.out = d
	}
	if req.ErrorRate != nil {
		b.ErrorRate = *req.ErrorRate
	}
	if req.Seed != nil {
		if *req.Seed == 0 {
			return b, errors.New("seed: 0 is not a seed; omit it to keep the current one")
		}
		b.Seed = *req.Seed
	}
	return b, nil
}
