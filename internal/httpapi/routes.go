package httpapi

import (
	"net/http"
	"slices"

	"github.com/yolda/yolda/internal/deadletter"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
)

// route is one operation: how it is served and how it is documented. The
// OpenAPI document is generated from this table, so the two cannot drift.
type route struct {
	method  string
	pattern string
	summary string
	tag     string
	// public routes need no token; limited public routes are rate
	// limited per address.
	public  bool
	limited bool
	// listener is where the route is served: the API listener (the
	// default), the operations listener, or both.
	listener listener
	// tokenInQuery routes also take the bearer token as the access_token
	// query parameter (browsers opening a WebSocket cannot set headers).
	tokenInQuery bool
	// longLived routes hold their connection (the WebSocket): they are
	// not counted against MaxInFlight, which is for requests that end.
	longLived bool
	// roles that may call it; empty means any authenticated role.
	roles   []identity.Role
	handler http.HandlerFunc
	// object is what the {id} of the pattern names (objectRequest, ...);
	// the security tests check every role against someone else's object
	// of that kind.
	object string

	body any // request body type, for the schema
	// example is a valid body: documented, and sent by the tests that call
	// every route.
	example any
	// maxBody caps the body (413 past it); 0 is Options.MaxBodyBytes.
	maxBody int64
	success int
	result  any // response body type; nil for no body
	query   []param
	headers []param
	errors  []int
}

type param struct {
	name, description string
	kind              string // "string", "integer"
	enum              []string
	// list params take several values, comma-separated.
	list bool
}

type listener uint8

const (
	onAPI listener = iota
	onOps
	onBoth
)

// The kinds of object a path's {id} can name.
const (
	objectRequest    = "request"
	objectDeadLetter = "dead_letter"
	objectUser       = "user"
)

var (
	staff     = []identity.Role{identity.Operator, identity.Admin}
	requester = []identity.Role{identity.Customer, identity.Operator, identity.Admin}
)

func (s *Server) routeTable() []route {
	rs := []route{
		{method: "GET", pattern: "/healthz", summary: "Liveness: the process answers", tag: "operations", public: true, listener: onBoth,
			handler: s.handleHealth, success: 200, result: map[string]string{}},
		{method: "GET", pattern: "/readyz", summary: "Readiness: the stores answer", tag: "operations", public: true, listener: onBoth,
			handler: s.handleReady, success: 200, result: map[string]string{}, errors: []int{503}},
		{method: "GET", pattern: "/metrics", summary: "Prometheus metrics (on the operations listener only)", tag: "operations", public: true, listener: onOps,
			handler: s.metricsHandler().ServeHTTP, success: 200},
		{method: "GET", pattern: "/openapi.json", summary: "This document", tag: "operations", public: true,
			handler: s.handleOpenAPI, success: 200, result: map[string]any{}},

		{method: "POST", pattern: "/v1/auth/login", summary: "Exchange a username and password for an access token", tag: "auth",
			public: true, limited: true, handler: s.handleLogin, body: loginBody{}, maxBody: smallBody,
			example: loginBody{Username: "ayse", Password: "correct horse battery staple"}, success: 200, result: loginAnswer{},
			errors: []int{400, 401, 413, 422, 429}},
		{method: "GET", pattern: "/v1/me", summary: "Who the token speaks for", tag: "auth",
			handler: s.handleMe, success: 200, result: meAnswer{}, errors: []int{401}},

		{method: "POST", pattern: "/v1/requests", summary: "Ask for roadside assistance", tag: "requests", roles: requester,
			handler: s.handleCreateRequest, body: intake.Submission{}, example: exampleSubmission, success: 202, result: intake.Request{},
			headers: []param{{name: "Idempotency-Key", kind: "string", description: "1-255 printable characters; a repeat with the same body returns the first answer"}},
			errors:  []int{400, 401, 403, 413, 415, 422, 429, 503}},
		{method: "GET", pattern: "/v1/requests", summary: "List requests (a customer sees its own, a driver its jobs)", tag: "requests",
			handler: s.handleListRequests, success: 200, result: requestList{}, query: listParams(), errors: []int{401, 422, 429}},
		{method: "GET", pattern: "/v1/requests/{id}", summary: "Read one request", tag: "requests",
			object: objectRequest, handler: s.handleGetRequest, success: 200, result: intake.Request{}, errors: []int{401, 404, 429}},
		{method: "POST", pattern: "/v1/requests/{id}/cancel", summary: "Cancel a request", tag: "requests", roles: requester,
			object: objectRequest, handler: s.handleCancelRequest, body: cancelBody{}, maxBody: smallBody, example: cancelBody{Reason: "found help"}, success: 200, result: intake.Request{},
			errors: []int{400, 401, 403, 404, 409, 422, 429}},
		{method: "POST", pattern: "/v1/requests/{id}/insurance", summary: "Settle the insurance question by hand (waive or reject)", tag: "requests",
			roles: staff, object: objectRequest, handler: s.handleDecideInsurance, body: insuranceDecision{}, maxBody: smallBody,
			example: insuranceDecision{Decision: decision(intake.InsuranceWaived), Reason: "the customer paid on the spot"}, success: 200, result: intake.Request{},
			errors: []int{400, 401, 403, 404, 409, 422, 429}},
		{method: "GET", pattern: "/v1/insurers", summary: "Configured insurers and their live health", tag: "insurers", roles: staff,
			handler: s.handleInsurers, success: 200, result: insurerList{}, errors: []int{401, 403, 429}},
		{method: "GET", pattern: "/v1/requests/{id}/notifications", summary: "What the customer was told about a request", tag: "requests",
			object: objectRequest, handler: s.handleNotifications, success: 200, result: notificationList{}, errors: []int{401, 404, 429}},

		{method: "GET", pattern: "/v1/admin/dead-letters", summary: "Messages a worker gave up on", tag: "admin", roles: staff,
			handler: s.handleDeadLetters, success: 200, result: deadLetterList{},
			query:  []param{limitParam, cursorParam},
			errors: []int{401, 403, 422, 429}},
		{method: "POST", pattern: "/v1/admin/dead-letters/{id}/retry", summary: "Send a dead letter's message again", tag: "admin", roles: staff,
			object: objectDeadLetter, handler: s.handleRetryDeadLetter, success: 202, result: deadletter.Letter{}, errors: []int{401, 403, 404, 429}},
	}
	rs = append(rs, s.accountRoutes()...)
	if s.fleet != nil {
		rs = append(rs, s.driverRoutes()...)
	}
	if s.dispatch != nil {
		rs = append(rs, s.dispatchRoutes()...)
	}
	if s.opts.OnlyRealtime {
		rs = slices.DeleteFunc(rs, func(rt route) bool { return rt.tag != "operations" })
	}
	if s.realtime != nil {
		rs = append(rs, s.realtimeRoutes()...)
	}
	return rs
}

func listParams() []param {
	return []param{
		{name: "status", kind: "string", description: "one status or several, comma-separated", enum: intake.Status("").Enum(), list: true},
		{name: "province", kind: "string"},
		{name: "insurer", kind: "string"},
		{name: "service_type", kind: "string", enum: intake.ServiceType("").Enum()},
		{name: "from", kind: "string", description: "RFC 3339; created at or after"},
		{name: "to", kind: "string", description: "RFC 3339; created before"},
		limitParam,
		cursorParam,
	}
}
