package httpapi

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/yolda/yolda/internal/validate"
	"github.com/yolda/yolda/internal/warehouse"
)

// Reports answers the report queries from the warehouse. The API never
// answers a report from the operational database.
type Reports interface {
	Requests(ctx context.Context, q warehouse.Query) (warehouse.Report, error)
	SLAReport(ctx context.Context, q warehouse.Query) (warehouse.Report, error)
	Breaches(ctx context.Context, q warehouse.Query) (warehouse.Report, error)
	Insurers(ctx context.Context, q warehouse.Query) (warehouse.Report, error)
}

// forwarder is a reverse proxy to the warehouse process at target (nil:
// none). It passes the request as it came, Authorization included: the
// warehouse process authenticates and authorises it again.
func forwarder(target *url.URL, log *slog.Logger) http.Handler {
	if target == nil {
		return nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		},
		Transport: &http.Transport{
			Proxy:                 nil,
			ResponseHeaderTimeout: reportTimeout + 5*time.Second,
			MaxIdleConnsPerHost:   16,
			IdleConnTimeout:       90 * time.Second,
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.WarnContext(r.Context(), "report not forwarded", "err", err, "path", r.URL.Path)
			w.Header().Set("Content-Type", "application/problem+json")
			w.Header().Set("Retry-After", "5")
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(newProblem(http.StatusServiceUnavailable, "warehouse-unavailable",
				"Warehouse unavailable", "The warehouse process does not answer; retry shortly."))
		},
	}
}

// reportAnswer is the JSON of a report.
type reportAnswer struct {
	Columns   []string        `json:"columns"`
	Rows      []warehouse.Row `json:"rows"`
	Truncated bool            `json:"truncated"`
}

// reportTimeout bounds one report query: a query that runs longer is
// cancelled (its engine stops) and answers 503.
const reportTimeout = 30 * time.Second

func reportParams(withGroupBy bool, extra ...param) []param {
	dims := make([]string, len(warehouse.Dimensions))
	for i, d := range warehouse.Dimensions {
		dims[i] = string(d)
	}
	ps := []param{
		{name: "from", kind: "string", description: "RFC 3339 time or date; requests created at or after (default: 30 days before to)"},
		{name: "to", kind: "string", description: "RFC 3339 time or date; created before (default: now); at most 10 years after from"},
	}
	if withGroupBy {
		ps = append(ps, param{name: "group_by", kind: "string", enum: dims,
			description: "up to 4 dimensions, comma-separated; hour is a UTC hour, hour_of_day the hour in Turkey"})
	}
	return append(ps, extra...)
}

var (
	slaParams = reportParams(true,
		param{name: "view", kind: "string", enum: []string{"summary", "breaches"}, description: "breaches: the arrivals later than their insurer's arrival_sla_minutes, oldest first"},
		param{name: "limit", kind: "integer", description: "breaches only: 1-10000, default 1000"})
	requestsParams = reportParams(true)
	insurerParams  = reportParams(false)
)

func (s *Server) handleReportRequests(w http.ResponseWriter, r *http.Request) {
	s.report(w, r, requestsParams, func(ctx context.Context, q warehouse.Query, _ queryValues) (warehouse.Report, error) {
		return s.reports.Requests(ctx, q)
	})
}

func (s *Server) handleReportSLA(w http.ResponseWriter, r *http.Request) {
	s.report(w, r, slaParams, func(ctx context.Context, q warehouse.Query, v queryValues) (warehouse.Report, error) {
		if v.Get("view") == "breaches" {
			return s.reports.Breaches(ctx, q)
		}
		return s.reports.SLAReport(ctx, q)
	})
}

func (s *Server) handleReportInsurers(w http.ResponseWriter, r *http.Request) {
	s.report(w, r, insurerParams, func(ctx context.Context, q warehouse.Query, _ queryValues) (warehouse.Report, error) {
		return s.reports.Insurers(ctx, q)
	})
}

type queryValues interface{ Get(string) string }

// report validates the query against the route's parameters, runs it and
// answers JSON or, when the client asks for it, CSV. Without a warehouse
// in this process it forwards to the warehouse role (Deps.ReportsForward)
// or says reports are not served here.
func (s *Server) report(w http.ResponseWriter, r *http.Request, params []param, run func(context.Context, warehouse.Query, queryValues) (warehouse.Report, error)) {
	if s.reports == nil {
		if s.reportsForward != nil {
			s.reportsForward.ServeHTTP(w, r)
			return
		}
		p := newProblem(http.StatusServiceUnavailable, "reports-elsewhere", "Reports not served here",
			"This process runs no warehouse; reports are served by the warehouse role (see docs/reports.md).")
		s.writeProblem(w, r, p)
		return
	}
	q, vals, err := parseReportQuery(r, params)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), reportTimeout)
	defer cancel()
	rep, err := run(ctx, q, vals)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, warehouse.ErrUnavailable) {
			s.log.WarnContext(ctx, "report failed", "err", err, "path", r.URL.Path)
			p := newProblem(http.StatusServiceUnavailable, "warehouse-unavailable", "Warehouse unavailable",
				"The report could not be computed now; retry shortly.")
			p.retryAfter = 5 * time.Second
			s.writeProblem(w, r, p)
			return
		}
		s.writeProblem(w, r, err)
		return
	}
	if wantsCSV(r) {
		writeReportCSV(w, rep)
		return
	}
	writeJSON(w, http.StatusOK, reportAnswer{Columns: rep.Columns, Rows: rep.Rows, Truncated: rep.Truncated})
}

// parseReportQuery checks every query parameter against the route's list:
// unknown or repeated parameters are errors, as are bad values.
func parseReportQuery(r *http.Request, params []param) (warehouse.Query, queryValues, error) {
	vals := r.URL.Query()
	var errs validate.Errors
	known := map[string]bool{}
	for _, p := range params {
		known[p.name] = true
	}
	for name, v := range vals {
		if !known[name] {
			errs.Add(name, "is not a known query parameter")
		} else if len(v) > 1 {
			errs.Add(name, "must be given once")
		}
	}
	if err := errs.Err(); err != nil {
		return warehouse.Query{}, nil, err
	}
	q, err := warehouse.ParseQuery(vals.Get("from"), vals.Get("to"), vals.Get("group_by"), time.Now(), nil)
	if err != nil {
		var fe validate.Errors
		if errors.As(err, &fe) {
			errs = append(errs, fe...)
		} else {
			return q, nil, err
		}
	}
	switch v := vals.Get("view"); v {
	case "", "summary":
	case "breaches":
		if vals.Get("group_by") != "" {
			errs.Add("group_by", "does not apply to view=breaches")
		}
		q.Limit = warehouse.DefaultBreaches
	default:
		errs.Add("view", "must be summary or breaches")
	}
	if v := vals.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case vals.Get("view") != "breaches":
			errs.Add("limit", "applies to view=breaches only")
		case err != nil || n < 1 || n > warehouse.MaxBreaches:
			errs.Add("limit", "must be an integer from 1 to 10000")
		default:
			q.Limit = n
		}
	}
	return q, vals, errs.Err()
}

// wantsCSV reports whether the client asked for text/csv before JSON.
func wantsCSV(r *http.Request) bool {
	for part := range strings.SplitSeq(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if q, ok := params["q"]; ok && q == "0" {
			continue
		}
		switch mt {
		case "text/csv":
			return true
		case "application/json", "application/*", "*/*":
			return false
		}
	}
	return false
}

// writeReportCSV writes the report with a header line of its columns. A
// truncated report says so in a header, since CSV has nowhere else.
func writeReportCSV(w http.ResponseWriter, rep warehouse.Report) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if rep.Truncated {
		w.Header().Set("X-Truncated", "true")
	}
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	_ = cw.Write(rep.Columns)
	rec := make([]string, len(rep.Columns))
	for _, row := range rep.Rows {
		for i, c := range rep.Columns {
			rec[i] = csvCell(row[c])
		}
		_ = cw.Write(rec)
	}
	cw.Flush()
}

func csvCell(v warehouse.Value) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		// A cell a spreadsheet would run as a formula is quoted as text.
		if x != "" && strings.ContainsRune("=+-@\t\r", rune(x[0])) {
			return "'" + x
		}
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	return ""
}
