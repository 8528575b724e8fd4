package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// resourceFlags are the CPU and memory flags of env and fn create/update.
type resourceFlags struct {
	mincpu, maxcpu, minmemory, maxmemory int
}

func (o *resourceFlags) addFlags(f *pflag.FlagSet) {
	f.IntVar(&o.mincpu, "mincpu", 0, "minimum CPU in millicores")
	f.IntVar(&o.maxcpu, "maxcpu", 0, "maximum CPU in millicores")
	f.IntVar(&o.minmemory, "minmemory", 0, "minimum memory in MiB")
	f.IntVar(&o.maxmemory, "maxmemory", 0, "maximum memory in MiB")
}

// apply fills CPU (millicores) and memory (MiB) requests and limits from
// the flags set reports given; a zero value given explicitly removes the
// entry.
func (o *resourceFlags) apply(r *corev1.ResourceRequirements, set func(string) bool) {
	put := func(list *corev1.ResourceList, name corev1.ResourceName, q *resource.Quantity, flag string, v int) {
		if !set(flag) {
			return
		}
		if v <= 0 {
			if *list != nil {
				delete(*list, name)
			}
			return
		}
		if *list == nil {
			*list = corev1.ResourceList{}
		}
		(*list)[name] = *q
	}
	put(&r.Requests, corev1.ResourceCPU, resource.NewMilliQuantity(int64(o.mincpu), resource.DecimalSI), "mincpu", o.mincpu)
	put(&r.Limits, corev1.ResourceCPU, resource.NewMilliQuantity(int64(o.maxcpu), resource.DecimalSI), "maxcpu", o.maxcpu)
	put(&r.Requests, corev1.ResourceMemory, resource.NewQuantity(int64(o.minmemory)<<20, resource.BinarySI), "minmemory", o.minmemory)
	put(&r.Limits, corev1.ResourceMemory, resource.NewQuantity(int64(o.maxmemory)<<20, resource.BinarySI), "maxmemory", o.maxmemory)
	if len(r.Requests) == 0 {
		r.Requests = nil
	}
	if len(r.Limits) == 0 {
		r.Limits = nil
	}
}

// resourcesString renders requests and limits as "cpu 100m-200m, memory 64Mi-128Mi".
func resourcesString(r corev1.ResourceRequirements) string {
	var parts []string
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		min, hasMin := r.Requests[name]
		max, hasMax := r.Limits[name]
		if !hasMin && !hasMax {
			continue
		}
		lo, hi := "-", "-"
		if hasMin {
			lo = min.String()
		}
		if hasMax {
			hi = max.String()
		}
		parts = append(parts, fmt.Sprintf("%s %s..%s", name, lo, hi))
	}
	return strings.Join(parts, ", ")
}

func quantity(l corev1.ResourceList, name corev1.ResourceName) string {
	if q, ok := l[name]; ok {
		return q.String()
	}
	return ""
}
