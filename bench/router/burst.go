package main

import (
	"fmt"
	"net/http"
	"time"

	v1 "isotope.dev/isotope/api/v1"
)

// routeBurst stores n updates of one route as fast as the store takes
// them and reports how often the router rebuilt its table for them, and
// how long after the last update the last URL answered.
func routeBurst(h *harness, base string, n int) error {
	b := backends["handler"]
	if _, err := h.addFunction(b, "burst", "/burst/start", nil); err != nil {
		return err
	}
	defer h.removeFunction("burst")
	if err := waitFor(base+"/burst/start", http.StatusOK); err != nil {
		return err
	}
	before, err := h.counter("isotope_router_route_table_rebuilds_total")
	if err != nil {
		return err
	}
	obj, err := h.st.Get(h.ctx, v1.KindHTTPTrigger, "default", "burst-route")
	if err != nil {
		return err
	}
	tr := obj.(*v1.HTTPTrigger)
	t0 := time.Now()
	for i := range n {
		tr.Spec.RelativeURL = fmt.Sprintf("/burst/%d", i)
		out, err := h.st.Update(h.ctx, tr)
		if err != nil {
			return err
		}
		tr = out.(*v1.HTTPTrigger)
	}
	stored := time.Since(t0)
	t1 := time.Now()
	if err := waitFor(fmt.Sprintf("%s/burst/%d", base, n-1), http.StatusOK); err != nil {
		return err
	}
	served := time.Since(t1)
	after, err := h.counter("isotope_router_route_table_rebuilds_total")
	if err != nil {
		return err
	}
	rebuilds := after - before
	bench(fmt.Sprintf("route table rebuilds for a burst of %d route updates", n),
		fmt.Sprintf("%.0f rebuilds (%s to store, last served %s later)", rebuilds, ms(stored), ms(served)),
		fmt.Sprintf("%d updates", n), rebuilds/float64(n), "<= 0.50", rebuilds <= float64(n)/2)
	return nil
}

// waitFor polls url until it answers want, for up to 30 s.
func waitFor(url string, want int) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("GET %s: no %d within 30 s (last: %v)", url, want, err)
		}
		time.Sleep(500 * time.Microsecond) // poll resolution
	}
}

// counter reads a counter without labels from the harness's registry.
func (h *harness) counter(name string) (float64, error) {
	mfs, err := h.reg.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue(), nil
		}
	}
	return 0, fmt.Errorf("metric %s not registered", name)
}
