package httpapi_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/yolda/yolda/internal/httpapi"
	"github.com/yolda/yolda/internal/identity"
)

// concretePath fills a pattern's {id} with a well-formed id of its kind
// that names nothing.
func concretePath(rt httpapi.RouteInfo) string {
	id := "req_01JDQ3M6Y9B1X4G0ZC5V7N2K8P"
	if rt.Object == "dead_letter" {
		id = "dlq_01JDQ3M6Y9B1X4G0ZC5V7N2K8P"
	}
	return strings.ReplaceAll(rt.Pattern, "{id}", id)
}

// TestQueryParametersOneRule: every route, generated from the route
// table, refuses a query parameter it does not declare with 422 naming
// it, and a declared one given twice.
func TestQueryParametersOneRule(t *testing.T) {
	f := setup(t, "sqlite", httpapi.Options{})
	for _, rt := range f.api.Routes() {
		path, base := concretePath(rt), f.base(rt)
		user := "admin" // a role the route admits
		if len(rt.Roles) > 0 && !slices.Contains(rt.Roles, identity.Admin) {
			user = callers[rt.Roles[0]]
		}
		if rt.Tracking { // a link for the path's request
			user = f.trackingToken(t, strings.TrimPrefix(path, "/v1/track/")[:len("req_01JDQ3M6Y9B1X4G0ZC5V7N2K8P")], f.users["ayse"].ID)
		}
		a := f.doAt(t, base, rt.Method, path+"?colour=red", user, "")
		if a.status != 422 || !strings.Contains(a.body, `"field":"colour"`) {
			t.Errorf("%s %s?colour=red: %d %s", rt.Method, rt.Pattern, a.status, a.body)
		}
		for _, name := range rt.Query {
			a := f.doAt(t, base, rt.Method, path+"?"+name+"=1&"+name+"=2", user, "")
			if a.status != 422 || !strings.Contains(a.body, `"field":"`+name+`"`) {
				t.Errorf("%s %s with %s twice: %d %s", rt.Method, rt.Pattern, name, a.status, a.body)
			}
		}
	}
	if a := f.do(t, "GET", "/v1/admin/dead-letters?limit=5", "admin", ""); a.status != 200 {
		t.Errorf("declared parameter refused: %d %s", a.status, a.body)
	}
}

// base is the URL of the listener that serves rt.
func (f *fixture) base(rt httpapi.RouteInfo) string {
	if rt.OpsOnly {
		return f.ops.URL
	}
	return f.srv.URL
}
