package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/deadletter"
	"github.com/yolda/yolda/internal/httpapi"
	"github.com/yolda/yolda/internal/id"
	"github.com/yolda/yolda/internal/identity"
)

// objectMakers create, for each kind of object a path's {id} can name, one
// that belongs to ayse (or to nobody, for system objects) and return its
// id. A route whose object kind is missing here fails the matrix: classify
// it before it ships.
var objectMakers = map[string]struct {
	// owned objects belong to a customer: other non-staff callers must get
	// the answer of a missing id.
	owned bool
	make  func(t *testing.T, f *fixture) string
	// missing is a well-formed id that names nothing.
	missing string
}{
	"request": {owned: true, missing: "req_01JDQ3M6Y9B1X4G0ZC5V7N2K8P", make: func(t *testing.T, f *fixture) string {
		a := f.do(t, "POST", "/v1/requests", "ayse", validBody)
		if a.status != http.StatusAccepted {
			t.Fatalf("create: %d %s", a.status, a.body)
		}
		return a.json(t)["id"].(string)
	}},
	// A fresh account each time: the admin routes change it.
	"user": {missing: "usr_01JDQ3M6Y9B1X4G0ZC5V7N2K8P", make: func(t *testing.T, f *fixture) string {
		u, err := f.accounts.Add(context.Background(), account.NewUser{
			Username: "victim-" + strings.ToLower(id.New("x", time.Now())[2:]), Password: "victim-password", Role: identity.Customer,
		})
		if err != nil {
			t.Fatal(err)
		}
		return u.ID
	}},
	"dead_letter": {missing: "dlq_01JDQ3M6Y9B1X4G0ZC5V7N2K8P", make: func(t *testing.T, f *fixture) string {
		dead := deadletter.NewService(f.store, nil)
		if err := dead.Record(context.Background(), "notify", "EVENTS", "events.request.created", id.New("msg", time.Now()), []byte(`{}`), fmt.Errorf("boom"), 5); err != nil {
			t.Fatal(err)
		}
		letters, err := dead.List(context.Background(), "", 1)
		if err != nil || len(letters) == 0 {
			t.Fatalf("dead letters: %v %v", letters, err)
		}
		return letters[0].ID
	}},
}

// callers plays each role; ayse owns the objects, so the customer here is
// mehmet, a stranger to them.
var callers = map[identity.Role]string{
	identity.Customer: "mehmet", identity.Driver: "driver", identity.Operator: "operator", identity.Admin: "admin",
}

// TestObjectLevelAuthorisation is generated from the route table: every
// role x every route with an {id} x an object that is not the caller's.
// A role the route does not admit gets 403 whatever the id; a non-staff
// caller gets, for another customer's object, exactly the answer of an id
// that does not exist (404); staff reach it.
func TestObjectLevelAuthorisation(t *testing.T) {
	f := setup(t, "sqlite", httpapi.Options{})
	if len(callers) != len(identity.Roles) {
		t.Fatalf("callers cover %d roles of %d", len(callers), len(identity.Roles))
	}
	tested := 0
	for _, rt := range f.api.Routes() {
		if !strings.Contains(rt.Pattern, "{id}") {
			if rt.Object != "" {
				t.Errorf("%s %s names an object kind but has no {id}", rt.Method, rt.Pattern)
			}
			continue
		}
		maker, ok := objectMakers[rt.Object]
		if !ok {
			t.Errorf("%s %s: {id} of unclassified kind %q: set route.object and add it to objectMakers", rt.Method, rt.Pattern, rt.Object)
			continue
		}
		if rt.Public {
			t.Errorf("%s %s takes an {id} without a token", rt.Method, rt.Pattern)
			continue
		}
		for _, role := range identity.Roles {
			user := callers[role]
			name := rt.Method + " " + rt.Pattern + " as " + string(role)
			path := func(id string) string { return strings.ReplaceAll(rt.Pattern, "{id}", id) }
			body := string(rt.Example)
			theirs := f.do(t, rt.Method, path(maker.make(t, f)), user, body)
			missing := f.do(t, rt.Method, path(maker.missing), user, body)
			tested++
			admitted := len(rt.Roles) == 0 || slices.Contains(rt.Roles, role)
			switch {
			case !admitted:
				if theirs.status != 403 || missing.status != 403 {
					t.Errorf("%s: role not admitted answered %d (missing id: %d), want 403", name, theirs.status, missing.status)
				}
			case maker.owned && !role.Staff():
				if theirs.status != 404 {
					t.Errorf("%s: someone else's object answered %d %s, want 404", name, theirs.status, theirs.body)
				}
				if a, b := problemShape(t, theirs), problemShape(t, missing); a != b {
					t.Errorf("%s: someone else's object and a missing one differ:\n  %s\n  %s", name, a, b)
				}
			default:
				// Staff reach every object; what they get is the route's
				// business (success, or a conflict with its state).
				if theirs.status == 401 || theirs.status == 403 || theirs.status == 404 {
					t.Errorf("%s: staff refused: %d %s", name, theirs.status, theirs.body)
				}
				if missing.status != 404 {
					t.Errorf("%s: missing id answered %d, want 404", name, missing.status)
				}
			}
		}
	}
	if tested == 0 {
		t.Fatal("no route with an {id}: the matrix tested nothing")
	}
	t.Logf("%d role x route cases", tested)
}

// problemShape is what a client can compare of two problems: everything
// but the request id and the instance.
func problemShape(t *testing.T, a answer) string {
	t.Helper()
	m := a.json(t)
	return fmt.Sprintf("%d %s %v %v %v %v", a.status, a.header.Get("Content-Type"), m["type"], m["title"], m["detail"], m["errors"])
}
