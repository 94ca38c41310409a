package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/ratelimit"
)

// Limiter spends one request from budgets, from all of them or from none:
// ratelimit/memory within one process (the default), ratelimit/redis
// shared by every API process.
type Limiter interface {
	Allow(ctx context.Context, checks ...ratelimit.Check) (ratelimit.Decision, error)
}

// Route classes: what a route costs, for rate limits. Each route of the
// table names its class; a class has a budget per identity (by role) and
// per client address (DefaultRateLimits), so that an operator's panel
// paging the board and a customer creating requests are not held to one
// number. docs/security.md lists them.
const (
	// ClassLogin is the login: per address only (there is no identity
	// yet); it fails closed, being where passwords are guessed.
	ClassLogin = "login"
	// ClassCreateRequest is POST /v1/requests.
	ClassCreateRequest = "create-request"
	// ClassPositions is drivers reporting where they are.
	ClassPositions = "positions"
	// ClassBoard is the lists an operations panel polls and pages.
	ClassBoard = "board"
	// ClassWatch is reading one request (a customer watching it).
	ClassWatch = "watch"
	// ClassDefault is every other authenticated route.
	ClassDefault = "default"
)

// DefaultRateLimits are the policies of every class. user is the default
// class's per-identity budget (YOLDA_RATE_LIMIT_USER), login the login's
// per-address budget (YOLDA_RATE_LIMIT_IP). An Off user turns every
// per-identity budget off, an Off login every per-address one: the
// switches the benchmarks use. YOLDA_RATE_LIMITS changes the rest
// (ratelimit.Policies.Apply).
func DefaultRateLimits(user, login ratelimit.Limit) ratelimit.Policies {
	l := func(rate float64, burst int) ratelimit.Limit { return ratelimit.Limit{Rate: rate, Burst: burst} }
	roles := func(customer, driver, staff ratelimit.Limit) map[identity.Role]ratelimit.Limit {
		return map[identity.Role]ratelimit.Limit{identity.Customer: customer, identity.Driver: driver, identity.Operator: staff, identity.Admin: staff}
	}
	none := ratelimit.Limit{}
	ps := ratelimit.Policies{
		ClassLogin: {Address: login, FailClosed: true},
		// A customer asks for help a few times a day; five at once covers
		// retries. Operators type in requests for callers.
		ClassCreateRequest: {Identity: roles(l(0.2, 5), none, l(5, 30)), Address: l(50, 200)},
		// Apps report every few seconds; a depot's drivers may share an
		// address.
		ClassPositions: {Identity: roles(none, l(2, 10), none), Address: l(200, 1000)},
		// A panel polls every list each second or two and pages through
		// hundreds.
		ClassBoard:   {Identity: roles(l(5, 20), l(5, 20), l(50, 200)), Address: l(500, 2000)},
		ClassWatch:   {Identity: roles(l(10, 30), l(10, 30), l(50, 200)), Address: l(500, 2000)},
		ClassDefault: {Identity: roles(user, user, user), Address: l(500, 2000)},
	}
	for name, p := range ps {
		if user.Off() {
			for r := range p.Identity {
				p.Identity[r] = none
			}
		}
		if login.Off() {
			p.Address = none
		}
		ps[name] = p
	}
	return ps
}

// limit spends the request from its class's budgets: the caller's (when
// authenticated, by role) and its address's, in one decision. Every
// answer of a limited route carries RateLimit-Policy and RateLimit; a
// refusal is 429 with Retry-After. When the limiter cannot decide, the
// class fails open (the request passes) or closed (503).
func (s *Server) limit(class string, next http.Handler) http.Handler {
	pol := s.limits[class]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var checks [2]ratelimit.Check
		var names [2]string
		n := 0
		if p := principalFrom(r.Context()); p.UserID != "" {
			if l := pol.Identity[p.Role]; !l.Off() {
				checks[n], names[n] = ratelimit.Check{Key: "id:" + class + ":" + p.UserID, Limit: l}, class+"."+string(p.Role)
				n++
			}
		}
		if !pol.Address.Off() {
			checks[n], names[n] = ratelimit.Check{Key: "ip:" + class + ":" + clientIP(r, s.opts.TrustedProxies), Limit: pol.Address}, class+".address"
			n++
		}
		if n == 0 {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		d, err := s.limiter.Allow(r.Context(), checks[:n]...)
		s.metrics.limitLatency.Observe(time.Since(start).Seconds())
		if err != nil {
			s.metrics.limitDecisions.WithLabelValues(class, "error").Inc()
			s.limiterFailed(r.Context(), class, pol.FailClosed, err)
			if pol.FailClosed {
				p := newProblem(http.StatusServiceUnavailable, "rate-limiter-unavailable", "Rate limiter unavailable",
					"This operation is not served while its rate limits cannot be checked; retry shortly.")
				p.retryAfter = time.Second
				s.writeProblem(w, r, p)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		setRateLimitHeaders(w.Header(), names[:n], checks[:n], d)
		if !d.Allowed {
			s.metrics.limitDecisions.WithLabelValues(class, "limited").Inc()
			s.writeProblem(w, r, tooManyRequests(d.RetryAfter))
			return
		}
		s.metrics.limitDecisions.WithLabelValues(class, "allowed").Inc()
		next.ServeHTTP(w, r)
	})
}

// limiterFailed logs a limiter failure, at most once every ten seconds:
// a Redis outage would otherwise log every request.
func (s *Server) limiterFailed(ctx context.Context, class string, closed bool, err error) {
	now := time.Now().UnixNano()
	last := s.limiterWarned.Load()
	if now-last < int64(10*time.Second) || !s.limiterWarned.CompareAndSwap(last, now) {
		return
	}
	mode := "open"
	if closed {
		mode = "closed"
	}
	s.log.WarnContext(ctx, "rate limiter unavailable", "class", class, "fails", mode, "err", err,
		"redis_down", errors.Is(err, ratelimit.ErrUnavailable))
}

// setRateLimitHeaders writes the IETF RateLimit-Policy and RateLimit
// fields (draft-ietf-httpapi-ratelimit-headers): per budget, its quota
// (the burst) over its window (the time an empty budget takes to fill),
// and what remains and when it is whole again, in seconds rounded up.
func setRateLimitHeaders(h http.Header, names []string, checks []ratelimit.Check, d ratelimit.Decision) {
	var policy, state strings.Builder
	for i, c := range checks {
		if i > 0 {
			policy.WriteString(", ")
			state.WriteString(", ")
		}
		policy.WriteString(strconv.Quote(names[i]) + ";q=" + strconv.Itoa(max(c.Limit.Burst, 1)) + ";w=" + strconv.Itoa(ceilSeconds(c.Limit.Window())))
		state.WriteString(strconv.Quote(names[i]) + ";r=" + strconv.Itoa(d.States[i].Remaining) + ";t=" + strconv.Itoa(ceilSeconds(d.States[i].Reset)))
	}
	h.Set("RateLimit-Policy", policy.String())
	h.Set("RateLimit", state.String())
}

func ceilSeconds(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }

func tooManyRequests(wait time.Duration) *Problem {
	p := newProblem(http.StatusTooManyRequests, "rate-limited", "Too many requests", "Slow down and retry after the time given in Retry-After.")
	p.retryAfter = max(wait, time.Second)
	return p
}
