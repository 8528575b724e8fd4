package executor

import (
	"context"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor/instance"
	"isotope.dev/isotope/internal/store"
)

// newdeploy is Fission's strategy of dedicated instances: between
// MinScale and MaxScale instances of the function alone, started fresh
// and kept at MinScale; a request at the limit is served by the least
// busy instance rather than queued.
type newdeploy struct{}

func (newdeploy) admission(fn *v1.Function, lim store.Limits) limits {
	es := fn.Spec.InvokeStrategy.ExecutionStrategy
	l := limits{
		minInstances: max(es.MinScale, 0),
		maxInstances: max(es.MaxScale, es.MinScale, 1),
		slots:        max(fn.Spec.RequestsPerPod, 1),
		overload:     true,
	}
	if lim.MaxScale > 0 {
		// Objects stored before the limit was lowered.
		l.minInstances, l.maxInstances = min(l.minInstances, lim.MaxScale), min(l.maxInstances, lim.MaxScale)
	}
	return l
}

func (newdeploy) instance(ctx context.Context, _ envPools, rt instance.Runtime, env *v1.Environment) (instance.Instance, error) {
	return rt.Start(ctx, env)
}
