package executor

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"
)

// FunctionInstances counts the specialized instances of one function in
// this executor: the dashboard's and `isotope status`'s "instances".
type FunctionInstances struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Live instances, busy ones (serving at least one request) included.
	Live int `json:"live"`
	// Busy instances are serving a request now.
	Busy int `json:"busy"`
	// Specializing instances are being created or specialized.
	Specializing int `json:"specializing"`
}

// InstanceCounter is implemented by executors that can count their
// instances per function (Manager).
type InstanceCounter interface {
	Instances() []FunctionInstances
}

var _ InstanceCounter = (*Manager)(nil)

// Instances counts each function's instances, over every version of it
// (retired pools still draining included), sorted by namespace and name.
func (m *Manager) Instances() []FunctionInstances {
	m.mu.Lock()
	pools := make([]*fnPool, 0, len(m.pools)+len(m.old))
	for _, p := range m.pools {
		pools = append(pools, p)
	}
	for p := range m.old {
		pools = append(pools, p)
	}
	m.mu.Unlock()
	by := map[[2]string]*FunctionInstances{}
	for _, p := range pools {
		p.mu.Lock()
		k := [2]string{p.fn.Namespace, p.fn.Name}
		fi := by[k]
		if fi == nil {
			fi = &FunctionInstances{Namespace: k[0], Name: k[1]}
			by[k] = fi
		}
		for _, in := range p.insts {
			if in.ins.Alive() {
				fi.Live++
				if in.active > 0 {
					fi.Busy++
				}
			}
		}
		fi.Specializing += p.specializing
		p.mu.Unlock()
	}
	out := make([]FunctionInstances, 0, len(by))
	for _, fi := range by {
		if fi.Live+fi.Specializing > 0 {
			out = append(out, *fi)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// instanceCollector is isotope_function_instances, read from the pools at
// scrape time. One series per function that has instances: bounded by
// the functions deployed, and gone once a function's instances are.
type instanceCollector struct {
	m    *Manager
	desc *prometheus.Desc
}

func newInstanceCollector(m *Manager) *instanceCollector {
	return &instanceCollector{m: m, desc: prometheus.NewDesc("isotope_function_instances",
		"Live specialized instances of a function in this process, by state (idle or busy).",
		[]string{"namespace", "function", "state"}, nil)}
}

func (c *instanceCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *instanceCollector) Collect(ch chan<- prometheus.Metric) {
	for _, fi := range c.m.Instances() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(fi.Live-fi.Busy), fi.Namespace, fi.Name, "idle")
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(fi.Busy), fi.Namespace, fi.Name, "busy")
	}
}
