// Package controller is the one loop every Isotope controller runs: a
// watch of one Store kind feeds a keyed, rate-limited work queue
// (client-go's workqueue), and workers hand each key to Reconcile.
//
// The watch resumes from the last resourceVersion it delivered when its
// stream ends, and lists afresh when the store answers that the version
// has expired; a key whose object vanished while no watch could report
// it is reconciled too. Changes to one key that arrive while it waits
// in the queue are reconciled once (the queue holds each key at most
// once), a key is never reconciled by two workers at once, a failing
// Reconcile is retried after a per-key exponential backoff, and an
// optional periodic resync reconciles every object again whatever the
// watch said.
//
// Reconcile is level-triggered: it gets only a key, reads the object's
// current state (which may be "gone") and converges, so a missed,
// repeated or coalesced event changes nothing. RunAsLeader (leader.go)
// runs a role's controllers only while it holds a Kubernetes Lease.
//
// The package works over any store.Store (bbolt in the embedded mode,
// the kube-apiserver in the Kubernetes one); docs/decisions/0014 says
// why it is not controller-runtime's controller.
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/client-go/util/workqueue"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

// Key names one object of a controller's kind.
type Key struct {
	Namespace, Name string
}

// KeyOf returns obj's key.
func KeyOf(obj v1.Object) Key { return Key{Namespace: obj.GetNamespace(), Name: obj.GetName()} }

func (k Key) String() string { return k.Namespace + "/" + k.Name }

// Config configures a Controller.
type Config struct {
	// Store is watched, and listed at each resync. Required.
	Store store.Store
	// Kind is the v1 kind watched ("Package"). Required.
	Kind string
	// Reconcile brings what the controller manages in line with the
	// object key names as it is in the store now; the object may be gone.
	// It must be idempotent. A non-nil error is logged and the key is
	// reconciled again after a backoff that doubles with each failure
	// (RetryBaseDelay, RetryMaxDelay); nil forgets the key's failures.
	// Required.
	Reconcile func(ctx context.Context, key Key) error
	// Name names the controller in logs and in the queue's metrics
	// (default: Kind).
	Name string
	// Workers is how many keys are reconciled at once (default 1). With
	// one worker, keys are reconciled in the order their changes were
	// first seen.
	Workers int
	// Filter, when set, decides which watch events enqueue their key
	// (BOOKMARKs never do). Objects listed by a resync are passed to it
	// as ADDED events. A key whose object vanished unseen during an
	// expired watch is enqueued without it: there is no object to show.
	Filter func(store.Event) bool
	// ResyncInterval, when positive, is how often every object of the
	// kind is listed and enqueued again, with ResyncKeys' keys.
	ResyncInterval time.Duration
	// ResyncKeys, when set, names more keys to reconcile at each resync:
	// e.g. the owners of objects a deleted owner left behind.
	ResyncKeys func(ctx context.Context) ([]Key, error)
	// RetryBaseDelay and RetryMaxDelay bound the per-key backoff of a
	// failing Reconcile (defaults 5ms and 1000s, client-go's
	// DefaultTypedControllerRateLimiter, with its overall 10 retries per
	// second, burst 100).
	RetryBaseDelay, RetryMaxDelay time.Duration
	Logger                        *slog.Logger
}

// Re-opening a watch that failed, or that ended without delivering
// anything, waits from watchRetryMin, doubling up to watchRetryMax.
const (
	watchRetryMin = 100 * time.Millisecond
	watchRetryMax = 5 * time.Second
)

// Controller runs one Config. Create it with New and call Run once.
type Controller struct {
	cfg   Config
	log   *slog.Logger
	queue workqueue.TypedRateLimitingInterface[Key]
	ran   atomic.Bool
	// known holds the keys the watch last reported as existing; only
	// the watch goroutine uses it.
	known map[Key]struct{}
}

// New checks cfg and returns a Controller.
func New(cfg Config) (*Controller, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("controller: Config.Store is nil")
	case cfg.Reconcile == nil:
		return nil, errors.New("controller: Config.Reconcile is nil")
	}
	ki, err := v1.LookupKind(cfg.Kind)
	if err != nil {
		return nil, fmt.Errorf("controller: Config.Kind: %w", err)
	}
	cfg.Kind = ki.Kind
	if cfg.Name == "" {
		cfg.Name = cfg.Kind
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	if cfg.RetryBaseDelay <= 0 {
		cfg.RetryBaseDelay = 5 * time.Millisecond
	}
	if cfg.RetryMaxDelay <= 0 {
		cfg.RetryMaxDelay = 1000 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	limiter := workqueue.NewTypedMaxOfRateLimiter(
		workqueue.NewTypedItemExponentialFailureRateLimiter[Key](cfg.RetryBaseDelay, cfg.RetryMaxDelay),
		&workqueue.TypedBucketRateLimiter[Key]{Limiter: rate.NewLimiter(rate.Limit(10), 100)},
	)
	return &Controller{
		cfg: cfg,
		log: cfg.Logger.With("controller", cfg.Name),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(limiter,
			workqueue.TypedRateLimitingQueueConfig[Key]{Name: cfg.Name}),
		known: map[Key]struct{}{},
	}, nil
}

// Run watches and reconciles until ctx ends, then waits for the
// reconciles in progress (keys still queued are dropped: the next run
// starts from the store's state) and returns nil. A Controller runs
// once; a second Run is an error.
func (c *Controller) Run(ctx context.Context) error {
	if c.ran.Swap(true) {
		return fmt.Errorf("controller %s: Run called twice", c.cfg.Name)
	}
	var wg sync.WaitGroup
	wg.Go(func() { c.watch(ctx) })
	if c.cfg.ResyncInterval > 0 {
		wg.Go(func() { c.resyncEvery(ctx, c.cfg.ResyncInterval) })
	}
	for range c.cfg.Workers {
		wg.Go(func() {
			for c.processNext(ctx) {
			}
		})
	}
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
	return nil
}

// RunAll runs controllers until ctx ends and returns when every one has
// stopped, with their errors joined.
func RunAll(ctx context.Context, cs ...*Controller) error {
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() { errs[i] = c.Run(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// processNext reconciles one key; false means the queue is shut down.
func (c *Controller) processNext(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	if ctx.Err() != nil {
		return false
	}
	err := c.cfg.Reconcile(ctx, key)
	switch {
	case err == nil:
		c.queue.Forget(key)
	case ctx.Err() != nil:
		// Stopping: the error is most likely the cancellation itself.
	default:
		c.log.Warn("reconcile failed; retrying", "kind", c.cfg.Kind, "namespace", key.Namespace, "name", key.Name,
			"failures", c.queue.NumRequeues(key)+1, "err", err)
		c.queue.AddRateLimited(key)
	}
	return true
}

// enqueue adds key for ev unless the filter refuses it.
func (c *Controller) enqueue(ev store.Event) {
	if c.cfg.Filter != nil && !c.cfg.Filter(ev) {
		return
	}
	c.queue.Add(KeyOf(ev.Object))
}

// resyncEvery resyncs every interval until ctx ends.
func (c *Controller) resyncEvery(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.resync(ctx)
	}
}

// resync enqueues every object of the kind and ResyncKeys' keys.
func (c *Controller) resync(ctx context.Context) {
	objs, _, err := c.cfg.Store.List(ctx, c.cfg.Kind, store.ListOptions{})
	if err != nil && ctx.Err() == nil {
		c.log.Warn("resync: list failed", "kind", c.cfg.Kind, "err", err)
	}
	for _, o := range objs {
		c.enqueue(store.Event{Type: store.Added, Object: o})
	}
	if c.cfg.ResyncKeys == nil {
		return
	}
	keys, err := c.cfg.ResyncKeys(ctx)
	if err != nil && ctx.Err() == nil {
		c.log.Warn("resync: more keys failed", "kind", c.cfg.Kind, "err", err)
	}
	for _, k := range keys {
		c.queue.Add(k)
	}
}
