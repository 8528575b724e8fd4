package router

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the router's Prometheus series, labelled per function.
type metrics struct {
	requests   *prometheus.CounterVec   // by namespace, function, code
	errors     *prometheus.CounterVec   // by namespace, function, code
	latency    *prometheus.HistogramVec // by namespace, function
	coldStarts *prometheus.CounterVec   // by namespace, function
	unmatched  prometheus.Counter
	rebuilds   prometheus.Counter
	routes     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	fnLabels := []string{"namespace", "function"}
	codeLabels := []string{"namespace", "function", "code"}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "isotope_router_requests_total",
			Help: "Requests routed to a function, by response status code.",
		}, codeLabels),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "isotope_router_errors_total",
			Help: "Requests to a function that failed: 5xx, 429 and 499 (client gone), by code.",
		}, codeLabels),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "isotope_router_request_duration_seconds",
			Help:    "Time from the router receiving a request for a function to the end of the response.",
			Buckets: latencyBuckets,
		}, fnLabels),
		coldStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "isotope_router_cold_starts_total",
			Help: "Requests that had to wait for a function instance to be created or specialized.",
		}, fnLabels),
		unmatched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "isotope_router_unmatched_requests_total",
			Help: "Requests that matched no route (404 or 405).",
		}),
		rebuilds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "isotope_router_route_table_rebuilds_total",
			Help: "Times the route table was rebuilt after a trigger or function change.",
		}),
		routes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "isotope_router_routes",
			Help: "HTTPTrigger routes in the current route table.",
		}),
	}
	reg.MustRegister(m.requests, m.errors, m.latency, m.coldStarts, m.unmatched, m.rebuilds, m.routes)
	return m
}

// observe records one finished request to a function.
func (m *metrics) observe(ns, name string, code int, d time.Duration, cold bool) {
	c := strconv.Itoa(code)
	m.requests.WithLabelValues(ns, name, c).Inc()
	if isError(code) {
		m.errors.WithLabelValues(ns, name, c).Inc()
	}
	m.latency.WithLabelValues(ns, name).Observe(d.Seconds())
	if cold {
		m.coldStarts.WithLabelValues(ns, name).Inc()
	}
}

const http429 = 429

// latencyBuckets are the upper bounds, in seconds, of the request latency
// histogram: the Prometheus one and the router's windowed stats (stats.go).
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// isError reports whether a function request with this status counts as
// an error: 5xx, 429 and 499 (client gone).
func isError(code int) bool { return code >= 500 || code == http429 || code == statusClientClosed }
