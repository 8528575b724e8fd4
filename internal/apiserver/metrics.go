package apiserver

import (
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the API server's Prometheus collectors.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	watches  prometheus.Gauge
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "isotope_apiserver_requests_total",
			Help: "API requests by kind, verb and HTTP status code.",
		}, []string{"kind", "verb", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "isotope_apiserver_request_duration_seconds",
			Help:    "API request latency by kind and verb (watches excluded).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"kind", "verb"}),
		watches: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "isotope_apiserver_watches",
			Help: "Open watch streams.",
		}),
	}
	m.requests = register(reg, m.requests)
	m.latency = register(reg, m.latency)
	m.watches = register(reg, m.watches)
	return m
}

// register registers c, or returns the equal collector already
// registered (two Servers may share a registry).
func register[C prometheus.Collector](reg *prometheus.Registry, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

func (m *metrics) observe(rt route, code int, d time.Duration) {
	kind, verb := "unknown", rt.verb
	if rt.known {
		kind = rt.ki.Kind
	}
	if verb == "" {
		verb = "unknown"
	}
	m.requests.WithLabelValues(kind, verb, strconv.Itoa(code)).Inc()
	if verb != "watch" {
		m.latency.WithLabelValues(kind, verb).Observe(d.Seconds())
	}
}
