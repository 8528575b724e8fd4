package executor

import (
	"context"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor/instance"
	"isotope.dev/isotope/internal/store"
)

// poolmgr is Fission's default strategy: generic instances of the
// environment are kept warm (envPool) and specialized on demand, up to
// the function's concurrency, each serving requestsPerPod requests at
// once; requests past that queue, a bounded number, and then get 429.
type poolmgr struct{}

func (poolmgr) admission(fn *v1.Function, _ store.Limits) limits {
	s := fn.Spec
	l := limits{
		maxInstances: s.Concurrency,
		slots:        s.RequestsPerPod,
		onceOnly:     s.OnceOnly,
		retain:       s.RetainPods,
	}
	if l.slots <= 0 {
		l.slots = 1
	}
	if l.maxInstances <= 0 {
		l.maxInstances = 500 // Fission's default concurrency
	}
	return l
}

// instance takes a warm generic instance when the runtime keeps pools
// (processes, pods), else starts one (in-process WebAssembly, where an
// empty instance costs nothing).
func (poolmgr) instance(ctx context.Context, pools envPools, rt instance.Runtime, env *v1.Environment) (instance.Instance, error) {
	if rt.Pooled() {
		return pools.envPoolFor(env, rt).take(ctx)
	}
	return rt.Start(ctx, env)
}
