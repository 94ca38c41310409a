package mockinsurer

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Stats counts calls to POST /policies/verify since New. Every call counts in
// Calls once it reaches the handler, and in at most one of OK, Errors, Hung,
// Garbage, Rejected and Abandoned once its fate is known.
type Stats struct {
	Calls       int64 `json:"calls"`         // calls that reached the handler, whatever became of them
	OK          int64 `json:"ok"`            // well-formed 200 answers, covered or not
	NotCovered  int64 `json:"not_covered"`   // of OK, the answers with covered false
	Errors      int64 `json:"errors"`        // 500s (error rate), 503s and dropped connections (down)
	Hung        int64 `json:"hung"`          // calls that met hang mode
	Garbage     int64 `json:"garbage"`       // 200s with a broken body
	Rejected    int64 `json:"rejected"`      // 400s (bad request) and 401s (credentials)
	Abandoned   int64 `json:"abandoned"`     // calls that ended while waiting out their latency: the client gave up or the Server closed
	InFlight    int64 `json:"in_flight"`     // handlers running now, hung ones included
	MaxInFlight int64 `json:"max_in_flight"` // the most handlers ever running at once
}

// Option configures a Server.
type Option func(*Server)

// WithLogger logs every verify call at debug level and every behaviour change
// at info level. Without it the Server logs nothing.
func WithLogger(log *slog.Logger) Option {
	return func(s *Server) {
		if log != nil {
			s.log = log
		}
	}
}

// Server is the mock insurer, an http.Handler. Close it to release hung calls.
type Server struct {
	mux *http.ServeMux
	log *slog.Logger

	mu  sync.Mutex
	b   Behaviour  // normalised, Seed never 0
	rng *rand.Rand // not safe for concurrent use: guarded by mu

	// Rotations are counted apart from the random source so that which 503
	// or which garbage body a call gets is predictable from the call order.
	downN    atomic.Uint64
	garbageN atomic.Uint64

	calls, ok, notCovered, errs, hung, garbage, rejected, abandoned atomic.Int64
	inFlight, maxInFlight                                           atomic.Int64

	closeOnce sync.Once
	closed    chan struct{}
}

// New returns a Server that behaves as b. It panics if b does not Validate:
// a test's typo should fail loudly rather than run the wrong scenario.
func New(b Behaviour, opts ...Option) *Server {
	if err := b.Validate(); err != nil {
		panic("mockinsurer: " + err.Error())
	}
	b = b.normalised()
	if b.Seed == 0 {
		b.Seed = rand.Uint64() | 1 // never 0, so Behaviour reports a seed that repeats the run
	}
	s := &Server{
		log:    slog.New(slog.DiscardHandler),
		b:      b,
		rng:    newRand(b.Seed),
		closed: make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("POST /policies/verify", s.verify)
	s.mux.HandleFunc("GET /control", s.getControl)
	s.mux.HandleFunc("POST /control", s.postControl)
	return s
}

func newRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// ServeHTTP serves the insurer API and /control.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// Behaviour returns the current behaviour, with Mode, DownStyle and Seed
// filled in.
func (s *Server) Behaviour() Behaviour {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b
}

// Set replaces the whole behaviour, credentials included; to change one field
// start from Behaviour(). Calls already in progress keep the behaviour they
// arrived under (a hung call stays hung when the mode goes back to ok, as it
// would on a real insurer). Set panics if b does not Validate.
func (s *Server) Set(b Behaviour) {
	if err := b.Validate(); err != nil {
		panic("mockinsurer: " + err.Error())
	}
	s.mu.Lock()
	b = s.commitLocked(b)
	s.mu.Unlock()
	s.logChange(b)
}

// commitLocked installs b, reseeding when b asks for a new seed.
func (s *Server) commitLocked(b Behaviour) Behaviour {
	b = b.normalised()
	if b.Seed == 0 {
		b.Seed = s.b.Seed
	}
	if b.Seed != s.b.Seed {
		s.rng = newRand(b.Seed)
	}
	s.b = b
	return b
}

func (s *Server) logChange(b Behaviour) {
	s.log.Info("behaviour changed", "mode", b.Mode, "latency", b.Latency, "jitter", b.Jitter,
		"error_rate", b.ErrorRate, "down_style", b.DownStyle, "seed", b.Seed, "auth", authKind(b))
}

// Stats returns the counters. They are read one by one, so a snapshot taken
// while calls run may be off by the calls in progress.
func (s *Server) Stats() Stats {
	return Stats{
		Calls:       s.calls.Load(),
		OK:          s.ok.Load(),
		NotCovered:  s.notCovered.Load(),
		Errors:      s.errs.Load(),
		Hung:        s.hung.Load(),
		Garbage:     s.garbage.Load(),
		Rejected:    s.rejected.Load(),
		Abandoned:   s.abandoned.Load(),
		InFlight:    s.inFlight.Load(),
		MaxInFlight: s.maxInFlight.Load(),
	}
}

// Close releases every call that is hung or waiting out its latency, by
// dropping its connection, and makes later such calls drop theirs at once.
// It does not stop a listener: that is the http.Server's job. Close is
// idempotent.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
}

// maxBody bounds a verify request; the real ones are a few hundred bytes.
const maxBody = 64 << 10

type verifyRequest struct {
	PolicyNumber string `json:"policy_number"`
	Plate        string `json:"plate"`
	ServiceType  string `json:"service_type"`
	IncidentAt   string `json:"incident_at"`
}

type verifyResponse struct {
	Covered   bool      `json:"covered"`
	Reference string    `json:"reference"`
	Coverage  *coverage `json:"coverage"`
	Reason    *string   `json:"reason"`
}

type coverage struct {
	MaxTowKm int      `json:"max_tow_km"`
	Services []string `json:"services"`
}

func (s *Server) verify(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for m := s.maxInFlight.Load(); n > m && !s.maxInFlight.CompareAndSwap(m, n); m = s.maxInFlight.Load() {
	}

	// The body is read first in every mode: net/http only notices that a
	// client went away (and cancels r.Context()) once the body is consumed,
	// and a hung handler must notice it or it would leak.
	body, readErr := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))

	// One lock for the behaviour and every random draw of the call, drawn
	// before any waiting so that the sequence does not depend on timing.
	s.mu.Lock()
	b := s.b
	failRoll := s.rng.Float64()
	delay := b.Latency
	if b.Jitter > 0 {
		delay += time.Duration(s.rng.Int64N(2*int64(b.Jitter)+1)) - b.Jitter
	}
	ref := reference(s.rng)
	s.mu.Unlock()
	delay = max(delay, 0)

	switch b.Mode {
	case ModeDown:
		s.errs.Add(1)
		n := s.downN.Add(1)
		if b.DownStyle == DownClose || (b.DownStyle == DownAlternate && n%2 == 0) {
			s.log.Debug("verify", "outcome", "dropped")
			abort(w)
			return
		}
		s.log.Debug("verify", "outcome", "503")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "service unavailable"})
		return
	case ModeHang:
		s.hung.Add(1)
		s.log.Debug("verify", "outcome", "hung")
		select {
		case <-r.Context().Done():
		case <-s.closed:
			abort(w)
		}
		return
	}

	if !authorised(b, r) {
		s.rejected.Add(1)
		s.log.Debug("verify", "outcome", "401")
		if b.Bearer != "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mockinsurer"`)
		}
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong credentials"})
		return
	}
	req, err := parseVerify(body, readErr)
	if err != nil {
		s.rejected.Add(1)
		s.log.Debug("verify", "outcome", "400", "err", err)
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}

	if !s.wait(w, r, delay) {
		return
	}
	switch {
	case b.Mode == ModeGarbage:
		s.garbage.Add(1)
		s.log.Debug("verify", "outcome", "garbage")
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, garbageBody(s.garbageN.Add(1)-1))
	case failRoll < b.ErrorRate:
		s.errs.Add(1)
		s.log.Debug("verify", "outcome", "500", "policy", req.PolicyNumber)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
	default:
		resp := answer(req.PolicyNumber, ref)
		s.ok.Add(1)
		if !resp.Covered {
			s.notCovered.Add(1)
		}
		s.log.Debug("verify", "outcome", "200", "policy", req.PolicyNumber, "covered", resp.Covered)
		writeJSON(w, http.StatusOK, resp)
	}
}

// wait waits out the latency. It reports false, having dealt with the call,
// when the client gave up or the Server was closed first.
func (s *Server) wait(w http.ResponseWriter, r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		s.abandoned.Add(1)
		s.log.Debug("verify", "outcome", "abandoned")
		return false
	case <-s.closed:
		s.abandoned.Add(1)
		abort(w)
		return false
	}
}

func parseVerify(body []byte, readErr error) (verifyRequest, error) {
	var req verifyRequest
	if readErr != nil {
		return req, fmt.Errorf("reading body: %v", readErr)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("malformed JSON: %v", err)
	}
	if dec.More() {
		return req, errors.New("malformed JSON: data after the object")
	}
	if strings.TrimSpace(req.PolicyNumber) == "" {
		return req, errors.New("policy_number is required")
	}
	if req.IncidentAt != "" {
		if _, err := time.Parse(time.RFC3339, req.IncidentAt); err != nil {
			return req, fmt.Errorf("incident_at: not an RFC 3339 time: %q", req.IncidentAt)
		}
	}
	return req, nil
}

// answer is the insurer's decision, which depends on the policy number only.
func answer(policy, ref string) verifyResponse {
	all := []string{"tow", "jump_start", "flat_tire", "fuel_delivery", "lockout", "winch"}
	switch {
	case strings.HasPrefix(policy, "REJ"):
		reason := "policy not found or lapsed"
		return verifyResponse{Covered: false, Reference: ref, Reason: &reason}
	case strings.HasPrefix(policy, "NOTOW"):
		return verifyResponse{Covered: true, Reference: ref, Coverage: &coverage{MaxTowKm: 0, Services: all[1:]}}
	case strings.HasPrefix(policy, "SHORT"):
		return verifyResponse{Covered: true, Reference: ref, Coverage: &coverage{MaxTowKm: 10, Services: all}}
	default:
		return verifyResponse{Covered: true, Reference: ref, Coverage: &coverage{MaxTowKm: 100, Services: all}}
	}
}

// reference draws an insurer reference such as "ANA-7K2M9QXR4D".
func reference(rng *rand.Rand) string {
	const alphabet = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ" // no I or O: references get read aloud
	b := []byte("ANA-0000000000")
	for i := 4; i < len(b); i++ {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(b)
}

// garbageBody returns the i-th broken answer, rotating. Every one is a 200
// with a JSON content type, which is what makes them dangerous to a caller
// that trusts the status.
func garbageBody(i uint64) string {
	switch i % 6 {
	case 0:
		return `{"covered": true, "reference": "ANA-TRUNC` // truncated
	case 1:
		return `{"covered":"yes"}` // wrong type
	case 2:
		return `[]` // wrong shape
	case 3:
		return `{"covered":true,"reference":42,"coverage":{"max_tow_km":"far","services":"tow"},"reason":null}` // wrong nested types
	case 4:
		return `` // empty body
	default:
		return `<html><body><h1>502 Bad Gateway</h1></body></html>` // a proxy's error page
	}
}

func authorised(b Behaviour, r *http.Request) bool {
	if b.APIKey != "" && !equal(r.Header.Get("X-Api-Key"), b.APIKey) {
		return false
	}
	if b.Bearer != "" {
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || !equal(token, b.Bearer) {
			return false
		}
	}
	return true
}

func equal(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func authKind(b Behaviour) string {
	switch {
	case b.APIKey != "" && b.Bearer != "":
		return "api_key+bearer"
	case b.APIKey != "":
		return "api_key"
	case b.Bearer != "":
		return "bearer"
	default:
		return "none"
	}
}

// abort drops the connection without an answer. A hijacked TCP connection is
// closed with SO_LINGER 0, so the client sees a reset rather than a tidy
// EOF, as from a crashed load balancer. Where hijacking is not possible
// (HTTP/2, a recorder) it panics with http.ErrAbortHandler, which net/http
// turns into a dropped connection or a reset stream.
func abort(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
