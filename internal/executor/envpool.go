package executor

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor/instance"
	"isotope.dev/isotope/internal/store"
)

// envPool is poolmgr's pool of generic (unspecialized) instances of one
// version of an environment, kept at its pool size so a cold function
// only pays for specialization. Taking an instance starts a replacement,
// as Fission's relabelled pod makes the ReplicaSet start another.
type envPool struct {
	env  *v1.Environment
	rt   instance.Runtime
	size int
	h    envHost

	mu       sync.Mutex
	idle     []instance.Instance
	starting int
	closed   bool
}

// envHost is what an environment's pool needs of the executor.
type envHost struct {
	ctx          context.Context // ends when the executor closes
	startTimeout time.Duration
	bg           *tracker
	discard      func(instance.Instance)
	generic      prometheus.Gauge // warm generic instances of this runtime
	log          *slog.Logger
}

// poolSize is Fission's rule, poolsize for version 3 and 3 below,
// within the server's limit.
func poolSize(env *v1.Environment, l store.Limits) int {
	n := 3
	if env.Spec.Version >= 3 {
		n = max(env.Spec.Poolsize, 0)
	}
	if l.MaxPoolSize > 0 {
		n = min(n, l.MaxPoolSize)
	}
	return n
}

// take returns a generic instance: a warm one if any, else a new one.
func (e *envPool) take(ctx context.Context) (instance.Instance, error) {
	e.mu.Lock()
	for len(e.idle) > 0 {
		ins := e.idle[len(e.idle)-1]
		e.idle = e.idle[:len(e.idle)-1]
		e.h.generic.Dec()
		if ins.Alive() {
			e.mu.Unlock()
			e.refill()
			return ins, nil
		}
		e.h.discard(ins)
	}
	e.mu.Unlock()
	e.refill()
	return e.rt.Start(ctx, e.env)
}

// refill starts instances until the pool (with those starting) is full.
// A failed start is logged and not retried until the next take.
func (e *envPool) refill() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for !e.closed && len(e.idle)+e.starting < e.size {
		e.starting++
		e.h.bg.Go(func() {
			ctx, cancel := context.WithTimeout(e.h.ctx, e.h.startTimeout)
			ins, err := e.rt.Start(ctx, e.env)
			cancel()
			e.mu.Lock()
			defer e.mu.Unlock()
			e.starting--
			if err != nil {
				if !e.closed {
					e.h.log.Warn("could not start a pool instance", "env", e.env.Namespace+"/"+e.env.Name, "err", err)
				}
				return
			}
			if e.closed {
				e.h.discard(ins)
				return
			}
			e.idle = append(e.idle, ins)
			e.h.generic.Inc()
		})
	}
}

// close stops the pool and its idle instances.
func (e *envPool) close() {
	e.mu.Lock()
	e.closed = true
	idle := e.idle
	e.idle = nil
	e.mu.Unlock()
	for _, ins := range idle {
		e.h.generic.Dec()
		e.h.discard(ins)
	}
}
