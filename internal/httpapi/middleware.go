package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"runtime/debug"
	"strings"
	"time"

	"github.com/yolda/yolda/internal/audit"
	"github.com/yolda/yolda/internal/auth"
	"github.com/yolda/yolda/internal/identity"
)

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keyPrincipal
	keyAccessLog
)

// accessLog is what inner middleware tells the access log about a
// request. observe puts one in the context; authenticate, which derives
// a context of its own, fills it in. Both run on the request's goroutine.
type accessLog struct {
	user string
}

func requestIDFrom(ctx context.Context) string {
	s, _ := ctx.Value(keyRequestID).(string)
	return s
}

func principalFrom(ctx context.Context) identity.Principal {
	p, _ := ctx.Value(keyPrincipal).(identity.Principal)
	return p
}

var requestIDRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// statusRecorder remembers what a handler answered, for logs and metrics.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (WebSocket
// upgrades, flushes).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// observe is the outermost middleware: request id, panic recovery, access
// log and metrics, in that order of need.
func (s *Server) observe(route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rid := r.Header.Get("X-Request-Id")
		if !requestIDRe.MatchString(rid) {
			var b [12]byte
			_, _ = rand.Read(b[:])
			rid = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", rid)
		setSecurityHeaders(w.Header())
		al := &accessLog{}
		ctx := context.WithValue(context.WithValue(r.Context(), keyRequestID, rid), keyAccessLog, al)
		ctx = audit.WithOrigin(ctx, audit.Origin{Address: clientIP(r, s.opts.TrustedProxies), RequestID: rid})
		r = r.WithContext(ctx)
		rec := &statusRecorder{ResponseWriter: w}

		s.metrics.inFlight.Inc()
		defer func() {
			s.metrics.inFlight.Dec()
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.ErrorContext(ctx, "panic", "request_id", rid, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if rec.status == 0 {
					s.writeProblem(rec, r, errors.New("panic"))
				}
			}
			took := time.Since(start)
			s.metrics.observe(r.Method, route, rec.status, took)
			level := slog.LevelInfo
			if rec.status >= 500 {
				level = slog.LevelError
			}
			if route == "/healthz" || route == "/readyz" || route == "/metrics" {
				level = slog.LevelDebug
			}
			if !s.log.Enabled(ctx, level) {
				return // skip building the attributes: this runs on every request
			}
			s.log.LogAttrs(ctx, level, "http",
				slog.String("request_id", rid),
				slog.String("method", r.Method),
				slog.String("route", route),
				slog.String("path", r.URL.Path),
				slog.Int("status", rec.status),
				slog.Int("bytes", rec.bytes),
				slog.Float64("took_ms", float64(took.Microseconds())/1000),
				slog.String("remote", clientIP(r, s.opts.TrustedProxies)),
				slog.String("user", al.user),
			)
		}()
		next.ServeHTTP(rec, r)
	})
}

// shed refuses work beyond MaxInFlight, counted over every route, with 503
// before it costs anything.
func (s *Server) shed(next http.Handler) http.Handler {
	if s.inFlight == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.inFlight <- struct{}{}:
			defer func() { <-s.inFlight }()
			next.ServeHTTP(w, r)
		default:
			s.metrics.shed.Inc()
			p := newProblem(http.StatusServiceUnavailable, "overloaded", "Service busy", "The server is at capacity; retry shortly.")
			p.retryAfter = time.Second
			s.writeProblem(w, r, p)
		}
	})
}

// authenticate requires a valid bearer token (with inQuery, the header or
// the access_token query parameter) and one of roles (any role if roles is
// empty), then applies the per-identity rate limit.
func (s *Server) authenticate(roles []identity.Role, inQuery bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := tokenOf(r, inQuery)
		if !ok {
			s.writeProblem(w, r, auth.ErrInvalidToken)
			return
		}
		p, err := s.tokens.Verify(token)
		if err == nil {
			p, err = s.resolve(r.Context(), p)
		}
		if err != nil {
			s.writeProblem(w, r, err)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), keyPrincipal, p))
		if al, ok := r.Context().Value(keyAccessLog).(*accessLog); ok {
			al.user = p.UserID
		}
		if len(roles) > 0 && !hasRole(roles, p.Role) {
			s.writeProblem(w, r, newProblem(http.StatusForbidden, "forbidden", "Forbidden", "Your role may not do this."))
			return
		}
		if ok, wait := s.userLimit.Allow("user:" + p.UserID); !ok {
			s.writeProblem(w, r, tooManyRequests(wait))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// resolve asks the account service who a verified token speaks for now:
// a signature alone does not prove the account still exists, is enabled,
// has the token's role or has not had its tokens revoked.
func (s *Server) resolve(ctx context.Context, claimed identity.Principal) (identity.Principal, error) {
	if s.accounts == nil {
		return identity.Principal{}, auth.ErrInvalidToken
	}
	return s.accounts.Resolve(ctx, claimed)
}

// limitIP applies the per-address rate limit to public endpoints.
func (s *Server) limitIP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ok, wait := s.ipLimit.Allow("ip:" + clientIP(r, s.opts.TrustedProxies)); !ok {
			s.writeProblem(w, r, tooManyRequests(wait))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func tooManyRequests(wait time.Duration) *Problem {
	p := newProblem(http.StatusTooManyRequests, "rate-limited", "Too many requests", "Slow down and retry after the time given in Retry-After.")
	p.retryAfter = max(wait, time.Second)
	return p
}

func hasRole(roles []identity.Role, r identity.Role) bool {
	for _, x := range roles {
		if x == r {
			return true
		}
	}
	return false
}

// tokenOf is the request's bearer token: the Authorization header's or,
// for a route that takes it there (inQuery), the access_token parameter's.
func tokenOf(r *http.Request, inQuery bool) (string, bool) {
	if t, ok := bearerToken(r); ok || !inQuery {
		return t, ok
	}
	t := r.URL.Query().Get("access_token")
	return t, t != ""
}

func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return strings.TrimSpace(token), true
}

// clientIP is the peer address, or the last untrusted hop of
// X-Forwarded-For when the peer is a trusted proxy (Nginx in front).
func clientIP(r *http.Request, trusted []*net.IPNet) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if len(trusted) == 0 || !inNets(host, trusted) {
		return host
	}
	hops := strings.Split(r.Header.Get("X-Forwarded-For"), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if hop == "" {
			continue
		}
		if !inNets(hop, trusted) {
			return hop
		}
	}
	return host
}

func inNets(ip string, nets []*net.IPNet) bool {
	parsed := net.ParseIP(ip)
	if parsed == nil {
		return false
	}
	for _, n := range nets {
		if n.Contains(parsed) {
			return true
		}
	}
	return false
}
