package httpapi

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/validate"
)

type loginBody struct {
	Username string `json:"username" validate:"required"`
	Password string `json:"password" validate:"required"`
}

type loginAnswer struct {
	AccessToken string        `json:"access_token"`
	TokenType   string        `json:"token_type"`
	ExpiresIn   int           `json:"expires_in"`
	Role        identity.Role `json:"role"`
	UserID      string        `json:"user_id"`
}

type meAnswer struct {
	UserID   string        `json:"user_id"`
	Username string        `json:"username"`
	Role     identity.Role `json:"role"`
}

type requestList struct {
	Items      []intake.Request `json:"items"`
	NextCursor *string          `json:"next_cursor"`
}

type cancelBody struct {
	Reason string `json:"reason,omitempty"`
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	var body loginBody
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
	if s.accounts == nil {
		s.writeProblem(w, r, errNoSuchFeature)
		return
	}
	u, err := s.accounts.Login(r.Context(), account.LoginAttempt{
		Username: body.Username, Password: body.Password, Address: clientIP(r, s.opts.TrustedProxies),
	})
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	token, err := s.tokens.Issue(account.Principal(u))
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, loginAnswer{
		AccessToken: token, TokenType: "Bearer", ExpiresIn: int(s.tokens.TTL().Seconds()), Role: u.Role, UserID: u.ID,
	})
}

func (s *Server) handleMe(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	writeJSON(w, http.StatusOK, meAnswer{UserID: p.UserID, Username: p.Username, Role: p.Role})
}

func (s *Server) handleCreateRequest(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Idempotency-Key")
	if _, present := r.Header["Idempotency-Key"]; present && !validIdempotencyKey(key) {
		s.writeProblem(w, r, validate.Errors{{Field: "Idempotency-Key", Message: "must be 1-255 printable ASCII characters"}})
		return
	}
	var sub intake.Submission
	if err := decodeJSON(w, r, s.opts.MaxBodyBytes, &sub, false); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	created, err := s.intake.Create(r.Context(), principalFrom(r.Context()), sub, key)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/requests/"+created.Request.ID)
	if created.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeJSON(w, http.StatusAccepted, created.Request)
}

func validIdempotencyKey(k string) bool {
	if len(k) < 1 || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

func (s *Server) handleGetRequest(w http.ResponseWriter, r *http.Request) {
	req, err := s.intake.Get(r.Context(), principalFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, req)
}

func (s *Server) handleCancelRequest(w http.ResponseWriter, r *http.Request) {
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
	writeJSON(w, http.StatusOK, req)
}

func (s *Server) handleListRequests(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilter(r)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	page, err := s.intake.List(r.Context(), principalFrom(r.Context()), f)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	out := requestList{Items: page.Items}
	if out.Items == nil {
		out.Items = []intake.Request{}
	}
	if page.NextCursor != "" {
		c := encodeCursor(page.NextCursor)
		out.NextCursor = &c
	}
	writeJSON(w, http.StatusOK, out)
}

// Cursors are opaque to clients; today they wrap the last id seen, and the
// version prefix leaves room to change that.
func encodeCursor(lastID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("v1:" + lastID))
}

func decodeCursor(c string) (string, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", false
	}
	id, ok := strings.CutPrefix(string(raw), "v1:")
	return id, ok && strings.HasPrefix(id, "req_") && len(id) <= 64
}

// parseFilter reads the filters of GET /v1/requests; checkQuery has
// already refused parameters the route does not declare.
func parseFilter(r *http.Request) (intake.Filter, error) {
	q := r.URL.Query()
	var f intake.Filter
	var errs validate.Errors
	if v := q.Get("status"); v != "" {
		for _, part := range strings.Split(v, ",") {
			st := intake.Status(strings.TrimSpace(part))
			if !st.Valid() {
				errs.Add("status", "unknown status "+strconv.Quote(string(st)))
				continue
			}
			f.Statuses = append(f.Statuses, st)
		}
	}
	if v := q.Get("service_type"); v != "" {
		validate.OneOf(&errs, "service_type", intake.ServiceType(v), intake.ServiceTypes)
		f.ServiceType = intake.ServiceType(v)
	}
	f.Province = errs.Line("province", q.Get("province"), false, 80)
	f.Insurer = errs.Line("insurer", q.Get("insurer"), false, 64)
	for _, tf := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := q.Get(tf.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				errs.Add(tf.name, "must be an RFC 3339 time, e.g. 2026-11-26T10:00:00Z")
			}
			*tf.dst = t
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		errs.Add("to", "must be after from")
	}
	f.Limit = queryLimit(&errs, q)
	if v := q.Get("cursor"); v != "" {
		id, ok := decodeCursor(v)
		if !ok {
			errs.Add("cursor", "is not a cursor this API gave out")
		}
		f.Before = id
	}
	return f, errs.Err()
}
