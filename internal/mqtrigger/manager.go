package mqtrigger

import (
	"context"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/controller"
	"isotope.dev/isotope/internal/store"
)

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	Store      store.Store
	RouterURL  string
	HTTPClient *http.Client
	Queue      Options
	Logger     *slog.Logger
	// Handled is passed to every trigger's Config.Handled.
	Handled func(trigger string, r Result)
	// RouterReady, when set, is closed once the router serves its
	// routes (router.Router.Ready): no trigger consumes before, so a
	// server that has just started does not call functions its router
	// would not find yet.
	RouterReady <-chan struct{}
}

// Manager runs a consumer for every MessageQueueTrigger in a store (the
// embedded mode's trigger manager), reconciled by the one controller
// loop: a trigger created starts consuming, one changed restarts with
// its new spec, one deleted stops.
type Manager struct {
	cfg ManagerConfig
	log *slog.Logger

	mu      sync.Mutex
	running map[controller.Key]*running
	wg      sync.WaitGroup
}

type running struct {
	rv     string
	cancel context.CancelFunc
	done   chan struct{}
}

// NewManager returns a Manager; Run starts it.
func NewManager(cfg ManagerConfig) *Manager {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Queue.Logger == nil {
		cfg.Queue.Logger = cfg.Logger
	}
	return &Manager{cfg: cfg, log: cfg.Logger, running: map[controller.Key]*running{}}
}

// Run reconciles triggers until ctx ends, then stops every consumer.
func (m *Manager) Run(ctx context.Context) error {
	if m.cfg.RouterReady != nil {
		select {
		case <-m.cfg.RouterReady:
		case <-ctx.Done():
			return nil
		}
	}
	c, err := controller.New(controller.Config{
		Store: m.cfg.Store, Kind: v1.KindMessageQueueTrigger, Name: "mqtrigger",
		Reconcile: m.reconcile, ResyncInterval: time.Minute, Logger: m.log,
	})
	if err != nil {
		return err
	}
	err = c.Run(ctx)
	m.mu.Lock()
	for k, r := range m.running {
		r.cancel()
		delete(m.running, k)
	}
	m.mu.Unlock()
	m.wg.Wait()
	return err
}

// Running returns the keys ("namespace/name") of the triggers consuming.
func (m *Manager) Running() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.running))
	for k := range m.running {
		out = append(out, k.String())
	}
	sort.Strings(out)
	return out
}

func (m *Manager) reconcile(ctx context.Context, key controller.Key) error {
	obj, err := m.cfg.Store.Get(ctx, v1.KindMessageQueueTrigger, key.Namespace, key.Name)
	if err != nil && !store.IsNotFound(err) {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.running[key]
	if obj == nil {
		if cur != nil {
			m.stop(key, cur)
		}
		return nil
	}
	t := obj.(*v1.MessageQueueTrigger)
	if cur != nil {
		if cur.rv == t.ResourceVersion {
			return nil
		}
		m.stop(key, cur)
	}
	// A consumer outlives this reconcile: it stops with Run's context
	// (the controller's) or when the trigger changes.
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &running{rv: t.ResourceVersion, cancel: cancel, done: make(chan struct{})}
	m.running[key] = r
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(r.done)
		m.consume(rctx, t)
	}()
	m.log.Info("message queue trigger started", "trigger", key.String(), "type", t.Spec.MessageQueueType, "topic", t.Spec.Topic, "function", t.Spec.FunctionReference.Name)
	return nil
}

// stop ends a consumer and waits for its workers; m.mu is held.
func (m *Manager) stop(key controller.Key, r *running) {
	r.cancel()
	<-r.done
	delete(m.running, key)
	m.log.Info("message queue trigger stopped", "trigger", key.String())
}

// consume keeps one trigger consuming, reconnecting after failures with
// a delay doubling from 500 ms to 30 s.
func (m *Manager) consume(ctx context.Context, t *v1.MessageQueueTrigger) {
	log := m.log.With("trigger", t.Namespace+"/"+t.Name)
	delay := 500 * time.Millisecond
	for ctx.Err() == nil {
		err := RunTrigger(ctx, t, m.cfg.Queue, Config{
			RouterURL: m.cfg.RouterURL, HTTPClient: m.cfg.HTTPClient, Logger: log,
			Handled: func(r Result) {
				if m.cfg.Handled != nil {
					m.cfg.Handled(t.Namespace+"/"+t.Name, r)
				}
			},
		})
		if ctx.Err() != nil {
			return
		}
		log.Warn("message queue trigger stopped consuming; reconnecting", "err", err, "delay", delay)
		if !sleep(ctx, delay) {
			return
		}
		delay = min(delay*2, 30*time.Second)
	}
}

// RunTrigger opens t's queue and runs it (cfg's Trigger and Queue are
// set here) until ctx ends or the queue fails.
func RunTrigger(ctx context.Context, t *v1.MessageQueueTrigger, o Options, cfg Config) error {
	q, err := Open(ctx, t, o)
	if err != nil {
		return err
	}
	defer q.Close()
	cfg.Trigger, cfg.Queue = t, q
	if cfg.Concurrency == 0 {
		cfg.Concurrency = o.Concurrency
	}
	return Run(ctx, cfg)
}
