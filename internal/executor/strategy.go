package executor

import (
	"context"
	"time"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor/instance"
	"isotope.dev/isotope/internal/store"
)

// A strategy is a provisioning policy, Fission's executortype: how many
// instances of a function may exist and how requests are admitted to
// them, and where a new instance comes from. The runtime, the other axis
// (decision 0003), says what an instance is; Config.RuntimeFor picks it.
type strategy interface {
	// admission is the strategy's policy for fn, within the server's
	// limits; the executor then adjusts it to the runtime (a runtime
	// that multiplexes requests itself needs one instance).
	admission(fn *v1.Function, lim store.Limits) limits
	// instance returns a started, unspecialized instance of env on rt.
	instance(ctx context.Context, pools envPools, rt instance.Runtime, env *v1.Environment) (instance.Instance, error)
}

// envPools gives poolmgr the warm pool of an environment.
type envPools interface {
	envPoolFor(env *v1.Environment, rt instance.Runtime) *envPool
}

// limits is a pool's admission policy for its function's current spec.
type limits struct {
	maxInstances int // poolmgr concurrency, newdeploy MaxScale
	minInstances int // newdeploy MinScale
	slots        int // concurrent requests per instance
	onceOnly     bool
	overload     bool // newdeploy: overload instances instead of queueing
	queue        int  // poolmgr: waiters allowed at the instance limit
	idle         time.Duration
	retain       int
}

// strategyOf is fn's strategy (poolmgr when it names none).
func strategyOf(fn *v1.Function) strategy {
	if executorType(fn) == v1.ExecutorTypeNewdeploy {
		return newdeploy{}
	}
	return poolmgr{}
}

func executorType(fn *v1.Function) v1.ExecutorType {
	if t := fn.Spec.InvokeStrategy.ExecutionStrategy.ExecutorType; t != "" {
		return t
	}
	return v1.ExecutorTypePoolmgr
}
