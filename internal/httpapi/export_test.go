package httpapi

import (
	"encoding/json"

	"github.com/yolda/yolda/internal/identity"
)

// RouteInfo is a route as the tests in httpapi_test see it: they generate
// their matrices from the route table, so that a new route joins them.
type RouteInfo struct {
	Method, Pattern string
	Public          bool
	// OpsOnly routes are served on the operations listener alone.
	OpsOnly bool
	// Tracking routes take a tracking link's token, not an access token.
	Tracking bool
	// Roles may call the route; empty is any authenticated role.
	Roles []identity.Role
	// Object is what the pattern's {id} names.
	Object  string
	Query   []string
	Success int
	// Example is a valid body, or nil.
	Example []byte
}

// Routes lists the route table.
func (s *Server) Routes() []RouteInfo {
	out := make([]RouteInfo, 0, len(s.routes))
	for _, rt := range s.routes {
		ri := RouteInfo{Method: rt.method, Pattern: rt.pattern, Public: rt.public, Roles: rt.roles, Object: rt.object, Success: rt.success, OpsOnly: rt.listener == onOps, Tracking: rt.tracking}
		if rt.example != nil {
			ri.Example, _ = json.Marshal(rt.example)
		}
		for _, p := range rt.query {
			ri.Query = append(ri.Query, p.name)
		}
		out = append(out, ri)
	}
	return out
}
