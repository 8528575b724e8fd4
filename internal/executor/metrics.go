package executor

import "github.com/prometheus/client_golang/prometheus"

// metrics are the executor's Prometheus series. Labels are bounded:
// executor type, runtime name, state, result (per-function series are
// the router's).
type metrics struct {
	coldStarts      *prometheus.CounterVec
	specializations *prometheus.CounterVec
	specSeconds     *prometheus.HistogramVec
	instances       *prometheus.GaugeVec
	rejections      *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry) (*metrics, error) {
	m := &metrics{
		coldStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "isotope_executor_cold_starts_total",
			Help: "Requests that waited for an instance to be created or specialized.",
		}, []string{"executor"}),
		specializations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "isotope_executor_specializations_total",
			Help: "Instance specializations, by outcome.",
		}, []string{"executor", "runtime", "result"}),
		specSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "isotope_executor_specialization_duration_seconds",
			Help:    "Time to get a specialized instance (start or take from the pool, fetch, specialize).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"runtime"}),
		instances: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "isotope_executor_instances",
			Help: "Live instances: generic (warm pool) or specialized.",
		}, []string{"executor", "runtime", "state"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "isotope_executor_rejections_total",
			Help: "Requests refused with 429 at a function's concurrency limit.",
		}, []string{"executor"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.coldStarts, m.specializations, m.specSeconds, m.instances, m.rejections} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
