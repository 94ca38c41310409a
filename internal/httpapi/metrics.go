package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	inFlight prometheus.Gauge
	shed     prometheus.Counter
	// slowBodies counts bodies cut off by the body read deadline.
	slowBodies prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "yolda_http_requests_total", Help: "HTTP requests answered, by route and status code.",
		}, []string{"method", "route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "yolda_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"method", "route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "yolda_http_in_flight_requests", Help: "HTTP requests being served.",
		}),
		shed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "yolda_http_shed_total", Help: "Requests refused with 503 because too many were in flight.",
		}),
		slowBodies: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "yolda_http_body_timeouts_total", Help: "Request bodies cut off with 408 because they arrived too slowly.",
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.inFlight, m.shed, m.slowBodies)
	return m
}

// observe records one answer. Every label comes from a closed set: the
// method is one of the standard ones or "other", the route is a pattern of
// the route table or unmatchedRoute, the code is what the server answered.
// A label taken from the client as sent would let anyone grow /metrics and
// the process's memory without bound.
func (m *metrics) observe(method, route string, status int, took time.Duration) {
	method = methodLabel(method)
	m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(method, route).Observe(took.Seconds())
}

// unmatchedRoute is the route label of every request no route matched.
const unmatchedRoute = "unmatched"

// methodLabel folds every method outside RFC 9110's into "other".
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}
