package router

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// FunctionCounts returns how many requests the router has sent to the
// function ns/name since it started, and how many of them failed (5xx,
// 429, 499: the isotope_router_errors_total series). The canary
// controller reads a function's error rate from the differences of
// two calls (package canary).
func (rt *Router) FunctionCounts(ns, name string) (requests, failures uint64) {
	return sumFor(rt.metrics.requests, ns, name), sumFor(rt.metrics.errors, ns, name)
}

// sumFor adds the series of vec labelled namespace=ns, function=name.
func sumFor(vec *prometheus.CounterVec, ns, name string) uint64 {
	ch := make(chan prometheus.Metric, 16)
	go func() { vec.Collect(ch); close(ch) }()
	var sum float64
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) != nil {
			continue
		}
		var gotNS, gotName bool
		for _, l := range d.GetLabel() {
			switch l.GetName() {
			case "namespace":
				gotNS = l.GetValue() == ns
			case "function":
				gotName = l.GetValue() == name
			}
		}
		if gotNS && gotName {
			sum += d.GetCounter().GetValue()
		}
	}
	return uint64(sum)
}
