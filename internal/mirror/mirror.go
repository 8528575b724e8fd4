// Package mirror keeps an in-memory copy of one kind of resource in sync
// with a store.Store, the way a client-go reflector does: list, then
// watch from the list's resourceVersion, and list again whenever the
// watch ends or its resourceVersion has expired.
//
// Consumers (the router's route table, the timer's cron entries) read a
// whole snapshot when told that something changed and reconcile against
// it, so they are level-triggered: a missed or coalesced notification
// loses nothing.
package mirror

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

// Mirror is a local copy of one kind. Use New, then Run in a goroutine.
type Mirror struct {
	st      store.Store
	kind    string
	opts    store.ListOptions
	log     *slog.Logger
	changed chan struct{}

	mu     sync.Mutex
	objs   map[string]v1.Object // "namespace/name" → object
	synced bool
}

// New returns a mirror of kind (a v1 Kind name) in st, limited by opts.
// A nil logger discards logs.
func New(st store.Store, kind string, opts store.ListOptions, logger *slog.Logger) *Mirror {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Mirror{
		st: st, kind: kind, opts: opts,
		log:     logger.With("kind", kind),
		changed: make(chan struct{}, 1),
		objs:    map[string]v1.Object{},
	}
}

// Changed receives a value after the mirror's content changed (several
// changes may be coalesced into one). It has a single consumer.
func (m *Mirror) Changed() <-chan struct{} { return m.changed }

// Synced reports whether a first list has completed.
func (m *Mirror) Synced() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.synced
}

// Snapshot returns the current objects sorted by namespace then name.
// The objects are shared: callers must not modify them.
func (m *Mirror) Snapshot() []v1.Object {
	m.mu.Lock()
	out := make([]v1.Object, 0, len(m.objs))
	for _, o := range m.objs {
		out = append(out, o)
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].GetNamespace() != out[j].GetNamespace() {
			return out[i].GetNamespace() < out[j].GetNamespace()
		}
		return out[i].GetName() < out[j].GetName()
	})
	return out
}

func (m *Mirror) notify() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// Run lists and watches until ctx ends. Errors are logged and retried
// with a backoff from 100 ms up to 5 s; Run returns only ctx's error.
func (m *Mirror) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		ok := m.listAndWatch(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if ok {
			backoff = 100 * time.Millisecond
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// listAndWatch does one list and the watch that follows it. It reports
// whether it got as far as a watch (so the backoff can reset).
func (m *Mirror) listAndWatch(ctx context.Context) bool {
	objs, rv, err := m.st.List(ctx, m.kind, m.opts)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("list failed; retrying", "err", err)
		}
		return false
	}
	fresh := make(map[string]v1.Object, len(objs))
	for _, o := range objs {
		fresh[o.GetNamespace()+"/"+o.GetName()] = o
	}
	m.mu.Lock()
	m.objs = fresh
	m.synced = true
	m.mu.Unlock()
	m.notify()

	w, err := m.st.Watch(ctx, m.kind, store.WatchOptions{ListOptions: m.opts, ResourceVersion: rv})
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("watch failed; listing again", "err", err, "resourceVersion", rv)
		}
		return false
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return true
		case ev, open := <-w.ResultChan():
			if !open {
				if ctx.Err() == nil {
					m.log.Debug("watch closed; listing again")
				}
				return true
			}
			if ev.Object == nil || ev.Type == store.Bookmark {
				continue
			}
			k := ev.Object.GetNamespace() + "/" + ev.Object.GetName()
			m.mu.Lock()
			if ev.Type == store.Deleted {
				delete(m.objs, k)
			} else {
				m.objs[k] = ev.Object
			}
			m.mu.Unlock()
			m.notify()
		}
	}
}
