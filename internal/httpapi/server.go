// Package httpapi is the edge inside the process: routing, authentication,
// object-level authorisation hand-off, rate limits, body limits, problem
// documents, access logs, metrics and the OpenAPI document. Handlers decode
// and encode; every rule lives in the domain packages they call.
package httpapi

import (
	"context"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/audit"
	"github.com/yolda/yolda/internal/deadletter"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/insurance/healthboard"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/notify"
	"github.com/yolda/yolda/internal/ratelimit"
	"github.com/yolda/yolda/internal/ratelimit/memory"
)

// Intake is what the API needs of the request service.
type Intake interface {
	Create(ctx context.Context, who identity.Principal, sub intake.Submission, idempotencyKey string) (intake.Created, error)
	Get(ctx context.Context, who identity.Principal, requestID string) (intake.Request, error)
	List(ctx context.Context, who identity.Principal, f intake.Filter) (intake.Page, error)
	Cancel(ctx context.Context, who identity.Principal, requestID, reason string) (intake.Request, error)
	DecideInsurance(ctx context.Context, who identity.Principal, requestID string, decision intake.InsuranceStatus, reason string) (intake.Request, error)
}

// Insurers reports the insurers' health over the deployment's processes
// (healthboard.View).
type Insurers interface {
	Health() healthboard.Answer
}

// DeadLetters lists and re-drives what consumers gave up on.
type DeadLetters interface {
	List(ctx context.Context, before string, limit int) ([]deadletter.Letter, error)
	Retry(ctx context.Context, letterID string) (deadletter.Letter, error)
}

// Notifications lists what a request's people were told.
type Notifications interface {
	Notifications(ctx context.Context, requestID string) ([]notify.Notification, error)
}

// Accounts checks credentials and says who a token speaks for now.
type Accounts interface {
	Login(ctx context.Context, a account.LoginAttempt) (account.User, error)
	// Resolve returns the principal a verified token speaks for as the
	// account is now, or an error wrapping account.ErrTokenRefused.
	Resolve(ctx context.Context, claimed identity.Principal) (identity.Principal, error)
}

// AccountAdmin is account management for admins.
type AccountAdmin interface {
	ListUsers(ctx context.Context, who identity.Principal, f account.UserFilter) (account.UserPage, error)
	Lookup(ctx context.Context, who identity.Principal, idOrUsername string) (account.User, error)
	CreateUser(ctx context.Context, who identity.Principal, n account.NewUser) (account.User, error)
	SetRole(ctx context.Context, who identity.Principal, userID string, role identity.Role) (account.User, error)
	SetDisabled(ctx context.Context, who identity.Principal, userID string, disabled bool, reason string) (account.User, error)
	ResetPassword(ctx context.Context, who identity.Principal, userID, password string) (account.User, error)
	RevokeTokens(ctx context.Context, who identity.Principal, userID string) (account.User, error)
}

// AuditTrail records the security events the edge sees (operator
// overrides) and lists the trail for admins.
type AuditTrail interface {
	audit.Recorder
	List(ctx context.Context, f audit.Filter) (audit.Page, error)
}

// Tokens issues and verifies bearer tokens.
type Tokens interface {
	Issue(p identity.Principal) (string, error)
	Verify(token string) (identity.Principal, error)
	// Expiry is when a verified token expires.
	Expiry(token string) (time.Time, error)
	TTL() time.Duration
}

// Options are the edge's limits.
type Options struct {
	// MaxBodyBytes caps a request body (413 past it).
	MaxBodyBytes int64
	// MaxInFlight caps concurrent requests (503 past it); 0 is no cap. A
	// request counts once its body is read.
	MaxInFlight int
	// BodyReadTimeout bounds the reading of one body (408 past it);
	// DefaultBodyReadTimeout when 0.
	BodyReadTimeout time.Duration
	// RateLimits are the budgets of every route class (DefaultRateLimits
	// with the configured changes). When nil, they are
	// DefaultRateLimits(UserRate/UserBurst, IPRate/IPBurst): zero Options
	// limit nothing.
	RateLimits ratelimit.Policies
	UserRate   float64
	UserBurst  int
	IPRate     float64
	IPBurst    int
	// MaxConnsPerIP caps the connections one client address keeps open on
	// the API listener (LimitConns); 0 is no cap. Trusted proxies are
	// exempt: every client comes through their address.
	MaxConnsPerIP int
	// TrustedProxies may set X-Forwarded-For.
	TrustedProxies []*net.IPNet
	// OnlyRealtime serves the WebSocket (and the probes) without the rest
	// of the API: a process of the realtime role without the api role.
	OnlyRealtime bool
	Version      string
}

// Deps are what the server is built from.
type Deps struct {
	Intake Intake
	// Accounts is required for every authenticated route: without it
	// every token is refused.
	Accounts Accounts
	Tokens   Tokens
	// Admin and Audit may be nil in tests that do not use them; their
	// routes then answer 404 (and nothing is recorded).
	Admin AccountAdmin
	Audit AuditTrail
	// DeadLetters and Notifications may be nil in tests that do not use
	// them; their routes then answer 404.
	DeadLetters   DeadLetters
	Notifications Notifications
	Insurers      Insurers
	// Pending adds the pending checks to the insurers' health; optional.
	Pending PendingChecks
	// Reports is the warehouse, when this process has one. Without it,
	// ReportsForward (if set) serves the report routes: the warehouse
	// role's process, reached over HTTP. Neither: the routes answer 503.
	Reports        Reports
	ReportsForward *url.URL
	// Fleet serves the drivers' routes; without it they do not exist.
	Fleet Fleet
	// Dispatch serves offers, assignment and job progress; without it
	// those routes do not exist.
	Dispatch Dispatch
	// Realtime serves GET /v1/ws; without it the route does not exist.
	Realtime Realtime
	// Tracking issues and checks the customer's tracking links; without
	// it their routes do not exist. Approaches (optional) adds the
	// driver's live position and arrival estimate to the tracking view.
	Tracking   TrackingLinks
	Approaches Approaches
	// Candidates lists the drivers an operator may assign a request to
	// (with Dispatch); without it that route does not exist.
	Candidates Candidates
	// OfferHistory (with Candidates) lists the offers made for a request.
	OfferHistory OfferHistory
	// Web serves the browser apps under / (pages and their assets); nil:
	// none, / answers 404.
	Web Site
	// Limiter spends from the rate limits' budgets: in-process when nil,
	// or shared by every API process (ratelimit/redis).
	Limiter Limiter
	// Ready reports whether the stores answer (readiness probe).
	Ready    func(ctx context.Context) error
	Registry *prometheus.Registry
	Logger   *slog.Logger
	Options  Options
}

// Server serves the HTTP API.
type Server struct {
	intake       Intake
	accounts     Accounts
	tokens       Tokens
	admin        AccountAdmin
	audit        AuditTrail
	dead         DeadLetters
	notes        Notifications
	insurers     Insurers
	pending      PendingChecks
	fleet        Fleet
	dispatch     Dispatch
	realtime     Realtime
	tracking     TrackingLinks
	approaches   Approaches
	candidates   Candidates
	offerHistory OfferHistory
	web          Site
	ready        func(ctx context.Context) error
	registry     *prometheus.Registry
	log          *slog.Logger
	opts         Options
	metrics      *metrics
	limiter      Limiter
	limits       ratelimit.Policies
	// limiterWarned is when (UnixNano) limiterFailed last logged.
	limiterWarned atomic.Int64
	routes        []route
	reports       Reports
	// reportsForward serves the report routes when reports is nil.
	reportsForward http.Handler
	// openAPIDoc is generated from routes once.
	openAPIDoc map[string]any
	handler    http.Handler
	ops        http.Handler
	// reportsOnly is the report routes and the API listener's probes.
	reportsOnly http.Handler
	// inFlight is a semaphore of MaxInFlight slots; nil means no cap.
	inFlight chan struct{}
}

// New builds the server and its routes.
func New(d Deps) *Server {
	if d.Options.MaxBodyBytes <= 0 {
		d.Options.MaxBodyBytes = 64 << 10
	}
	if d.Options.BodyReadTimeout <= 0 {
		d.Options.BodyReadTimeout = DefaultBodyReadTimeout
	}
	s := &Server{
		intake:         d.Intake,
		accounts:       d.Accounts,
		tokens:         d.Tokens,
		admin:          d.Admin,
		audit:          d.Audit,
		dead:           d.DeadLetters,
		notes:          d.Notifications,
		insurers:       d.Insurers,
		pending:        d.Pending,
		fleet:          d.Fleet,
		dispatch:       d.Dispatch,
		realtime:       d.Realtime,
		tracking:       d.Tracking,
		approaches:     d.Approaches,
		candidates:     d.Candidates,
		offerHistory:   d.OfferHistory,
		web:            d.Web,
		ready:          d.Ready,
		registry:       d.Registry,
		log:            d.Logger,
		opts:           d.Options,
		metrics:        newMetrics(d.Registry),
		limiter:        d.Limiter,
		limits:         d.Options.RateLimits,
		reports:        d.Reports,
		reportsForward: forwarder(d.ReportsForward, d.Logger),
	}
	if s.limiter == nil {
		s.limiter = memory.New(nil)
	}
	if s.limits == nil {
		s.limits = DefaultRateLimits(ratelimit.Limit{Rate: d.Options.UserRate, Burst: d.Options.UserBurst},
			ratelimit.Limit{Rate: d.Options.IPRate, Burst: d.Options.IPBurst})
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if d.Options.MaxInFlight > 0 {
		s.inFlight = make(chan struct{}, d.Options.MaxInFlight)
	}
	s.routes = s.routeTable()
	s.openAPIDoc = s.openAPI()
	var api, ops []route
	for _, rt := range s.routes {
		if rt.listener != onOps {
			api = append(api, rt)
		}
		if rt.listener != onAPI {
			ops = append(ops, rt)
		}
	}
	s.handler = s.mux(api, true)
	s.ops = s.mux(ops, false)
	var reports []route
	for _, rt := range api {
		if rt.tag == "operations" || rt.tag == "reports" {
			reports = append(reports, rt)
		}
	}
	s.reportsOnly = s.mux(reports, false)
	return s
}

// OpsHandler serves the operations listener (YOLDA_OPS_ADDR, loopback by
// default): health, readiness and metrics, for probes and Prometheus.
// Every process serves it, whatever its roles. ServeHTTP, the public API,
// answers health and readiness too (load balancers probe it) but never
// metrics: they tell an outsider what the process is doing, and any label
// is memory an outsider could grow.
func (s *Server) OpsHandler() http.Handler { return s.ops }

// ReportsHandler serves the report routes and the probes on the API
// listener: what a warehouse process without the api role answers there
// (its metrics are on the operations listener, as everyone's).
func (s *Server) ReportsHandler() http.Handler { return s.reportsOnly }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// mux registers every path once and dispatches on the method itself, so
// that a wrong method and an unknown path get problem documents too. With
// web, the paths no route claims may be the web apps' pages and assets.
func (s *Server) mux(routes []route, web bool) http.Handler {
	byPath := map[string]map[string]http.Handler{}
	var paths []string
	for _, rt := range routes {
		h := s.checkQuery(rt.query, rt.handler)
		class := rt.rateClass()
		switch {
		case rt.tracking:
			// The address's budget is spent before the link is checked:
			// guessing links costs budget too.
			h = s.limit(class, s.authenticateTracking(h))
		case rt.public:
			if class != "" {
				h = s.limit(class, h)
			}
		default:
			h = s.authenticate(rt.roles, rt.tokenInQuery, s.limit(class, h))
		}
		if rt.pattern != "/healthz" && rt.pattern != "/readyz" && rt.pattern != "/metrics" && !rt.longLived {
			h = s.shed(h)
		}
		limit := rt.maxBody
		if limit == 0 {
			limit = s.opts.MaxBodyBytes
		}
		h = s.readBody(limit, h)
		h = s.observe(rt.pattern, h)
		if byPath[rt.pattern] == nil {
			byPath[rt.pattern] = map[string]http.Handler{}
			paths = append(paths, rt.pattern)
		}
		byPath[rt.pattern][rt.method] = h
	}
	mux := http.NewServeMux()
	for _, p := range paths {
		methods := byPath[p]
		allow := slices.Sorted(maps.Keys(methods))
		notAllowed := s.observe(p, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			s.writeProblem(w, r, newProblem(http.StatusMethodNotAllowed, "method-not-allowed", "Method not allowed",
				"This resource answers "+strings.Join(allow, ", ")+"."))
		}))
		mux.Handle(p, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if h, ok := methods[r.Method]; ok {
				h.ServeHTTP(w, r)
				return
			}
			notAllowed.ServeHTTP(w, r)
		}))
	}
	notFound := s.observe(unmatchedRoute, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeProblem(w, r, newProblem(http.StatusNotFound, "not-found", "Not found", "No such resource."))
	}))
	if !web || s.web == nil {
		mux.Handle("/", notFound)
		return mux
	}
	pages := s.observe(webRoute, s.shed(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.serveWeb(w, r) {
			s.writeProblem(w, r, newProblem(http.StatusNotFound, "not-found", "Not found", "No such resource."))
		}
	})))
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := s.web.Lookup(r.URL.Path); ok {
			pages.ServeHTTP(w, r)
			return
		}
		notFound.ServeHTTP(w, r)
	}))
	return mux
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": s.opts.Version})
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if s.ready != nil {
		if err := s.ready(ctx); err != nil {
			s.log.WarnContext(ctx, "not ready", "err", err)
			s.writeProblem(w, r, newProblem(http.StatusServiceUnavailable, "not-ready", "Not ready", "A store does not answer."))
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{Registry: s.registry})
}
