// Package canary runs Fission's CanaryConfigs: it moves an HTTPTrigger's
// function weights from oldfunction to newfunction by weightincrement
// every duration, as long as newfunction's failure percentage over the
// last interval, read from the router's own per-function counters, stays
// at or under failurethreshold; past it, it sends all traffic back to
// oldfunction and marks the canary failed. A canary whose new function
// reaches 100% is succeeded. See docs/canary.md and
// docs/decisions/0022-canary-releases.md.
package canary

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/controller"
	"isotope.dev/isotope/internal/store"
)

// Stats reads a function's request and failure counts since some fixed
// start; the router implements it (Router.FunctionCounts).
type Stats interface {
	FunctionCounts(ns, name string) (requests, failures uint64)
}

// Config configures the controller.
type Config struct {
	Store store.Store
	Stats Stats
	// Tick is how often every canary is looked at (default 200ms): a
	// step happens at the first tick at or after its interval ends.
	Tick   time.Duration
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Controller steps canaries. Its memory of each canary (when it last
// stepped, the counts then) is in-process: after a restart a canary's
// current interval starts again from the trigger's current weights.
type Controller struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	states map[controller.Key]*state
}

type state struct {
	uid        string
	generation int64
	since      time.Time // start of the current interval
	req, fail  uint64    // newfunction's counts at since
}

// New returns a controller.
func New(cfg Config) *Controller {
	if cfg.Tick <= 0 {
		cfg.Tick = 200 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Controller{cfg: cfg, log: log, states: map[controller.Key]*state{}}
}

// Run reconciles canaries until ctx ends: on every change and every Tick.
func (c *Controller) Run(ctx context.Context) error {
	ctl, err := controller.New(controller.Config{
		Store:          c.cfg.Store,
		Kind:           v1.KindCanaryConfig,
		Name:           "canary",
		Reconcile:      c.Reconcile,
		ResyncInterval: c.cfg.Tick,
		Logger:         c.log,
	})
	if err != nil {
		return err
	}
	return ctl.Run(ctx)
}

// Reconcile looks at one canary and steps it when its interval is over.
func (c *Controller) Reconcile(ctx context.Context, key controller.Key) error {
	cc, err := store.GetAs[*v1.CanaryConfig](ctx, c.cfg.Store, key.Namespace, key.Name)
	if store.IsNotFound(err) {
		c.forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	if cc.Status.Status != v1.CanaryStatusPending && cc.Status.Status != "" {
		c.forget(key)
		return nil
	}
	s := cc.Spec
	interval, err := time.ParseDuration(s.WeightIncrementDuration)
	if err != nil {
		return fmt.Errorf("canary %s: duration: %w", key, err)
	}
	now := c.cfg.Now()
	req, fail := c.cfg.Stats.FunctionCounts(cc.Namespace, s.NewFunction)

	c.mu.Lock()
	st := c.states[key]
	fresh := st == nil || st.uid != string(cc.UID) || st.generation != cc.Generation
	if fresh {
		// A new canary (or a changed one): its interval starts now.
		c.states[key] = &state{uid: string(cc.UID), generation: cc.Generation, since: now, req: req, fail: fail}
	}
	c.mu.Unlock()
	if fresh {
		// Put the trigger on weights now, so the new function gets
		// traffic from the first interval on (unless it already has).
		_, err := c.setWeights(ctx, cc, func(newW int) int { return newW })
		return err
	}
	if now.Sub(st.since) < interval {
		return nil
	}
	dReq, dFail := req-st.req, fail-st.fail
	failed := dReq > 0 && dFail*100 > uint64(s.FailureThreshold)*dReq
	var next int
	if failed {
		next, err = c.setWeights(ctx, cc, func(int) int { return 0 })
	} else {
		next, err = c.setWeights(ctx, cc, func(w int) int { return min(w+s.WeightIncrement, 100) })
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	st.since, st.req, st.fail = now, req, fail
	c.mu.Unlock()
	switch {
	case failed:
		c.log.Warn("canary rolled back: the new function failed too often", "canary", key.String(),
			"function", s.NewFunction, "requests", dReq, "failures", dFail, "threshold_percent", s.FailureThreshold)
		return c.setStatus(ctx, cc, v1.CanaryStatusFailed)
	case next >= 100:
		c.log.Info("canary succeeded: the new function has all the traffic", "canary", key.String(), "function", s.NewFunction)
		return c.setStatus(ctx, cc, v1.CanaryStatusSucceeded)
	}
	c.log.Info("canary stepped", "canary", key.String(), "function", s.NewFunction, "weight", next, "requests", dReq, "failures", dFail)
	return nil
}

func (c *Controller) forget(key controller.Key) {
	c.mu.Lock()
	delete(c.states, key)
	c.mu.Unlock()
}

// setWeights sets the trigger's weights to {new: f(current new weight),
// old: the rest} and returns the new function's weight. A trigger that
// is not yet split between the two starts from new 0.
func (c *Controller) setWeights(ctx context.Context, cc *v1.CanaryConfig, f func(int) int) (int, error) {
	s := cc.Spec
	var next int
	for attempt := 0; ; attempt++ {
		t, err := store.GetAs[*v1.HTTPTrigger](ctx, c.cfg.Store, cc.Namespace, s.Trigger)
		if err != nil {
			return 0, fmt.Errorf("canary %s/%s: trigger %s: %w", cc.Namespace, cc.Name, s.Trigger, err)
		}
		ref := t.Spec.FunctionReference
		cur := 0
		if ref.Type == v1.FunctionReferenceTypeFunctionWeights {
			if _, ok := ref.FunctionWeights[s.OldFunction]; ok {
				cur = ref.FunctionWeights[s.NewFunction]
			}
		}
		next = max(0, min(f(cur), 100))
		want := map[string]int{s.NewFunction: next, s.OldFunction: 100 - next}
		if ref.Type == v1.FunctionReferenceTypeFunctionWeights && len(ref.FunctionWeights) == 2 &&
			ref.FunctionWeights[s.NewFunction] == next && ref.FunctionWeights[s.OldFunction] == 100-next {
			return next, nil
		}
		t.Spec.FunctionReference = v1.FunctionReference{Type: v1.FunctionReferenceTypeFunctionWeights, FunctionWeights: want}
		_, err = c.cfg.Store.Update(ctx, t)
		if store.IsConflict(err) && attempt < 5 {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("canary %s/%s: set the weights of trigger %s: %w", cc.Namespace, cc.Name, s.Trigger, err)
		}
		return next, nil
	}
}

func (c *Controller) setStatus(ctx context.Context, cc *v1.CanaryConfig, status v1.CanaryStatus) error {
	cc = cc.DeepCopy()
	cc.Status.Status = status
	cc.ResourceVersion = ""
	_, err := c.cfg.Store.UpdateStatus(ctx, cc)
	if err == nil {
		c.forget(controller.KeyOf(cc))
	}
	return err
}
