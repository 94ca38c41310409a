package httpapi

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/validate"
)

// Every list pages the same way.
var (
	limitParam = param{name: "limit", kind: "integer",
		description: "1-" + strconv.Itoa(intake.MaxLimit) + ", default " + strconv.Itoa(intake.DefaultLimit)}
	cursorParam = param{name: "cursor", kind: "string", description: "next_cursor of the previous page"}
)

// checkQuery is the one rule for query strings, driven by the route
// table: a parameter the route does not declare, or a declared one given
// twice, is a 422 naming it, before the handler runs. A route added to
// the table gets the rule by being added.
func (s *Server) checkQuery(params []param, next http.Handler) http.Handler {
	known := make(map[string]bool, len(params))
	for _, p := range params {
		known[p.name] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery == "" {
			next.ServeHTTP(w, r)
			return
		}
		q, err := url.ParseQuery(r.URL.RawQuery)
		var errs validate.Errors
		if err != nil {
			errs.Add("(query)", "is not a valid query string")
		}
		names := make([]string, 0, len(q))
		for name := range q {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			switch {
			case !known[name]:
				errs.Add(name, "is not a known query parameter")
			case len(q[name]) > 1:
				errs.Add(name, "must be given once")
			}
		}
		if err := errs.Err(); err != nil {
			s.writeProblem(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// queryLimit reads the page size: 0 when absent (the default applies).
func queryLimit(errs *validate.Errors, q url.Values) int {
	v := q.Get("limit")
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > intake.MaxLimit {
		errs.Add("limit", "must be an integer from 1 to "+strconv.Itoa(intake.MaxLimit))
	}
	return n
}
