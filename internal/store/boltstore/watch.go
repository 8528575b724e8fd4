package boltstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"

	bolt "go.etcd.io/bbolt"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

// Watch implements store.Store.
//
// With ResourceVersion "" the watch first sends an ADDED event for every
// matching object, then a BOOKMARK carrying the store's resourceVersion at
// that moment, then live changes. With a resourceVersion it first replays
// every logged change after that version (from the persisted event log,
// so this works across restarts), then live changes; a version older than
// the log (or newer than the store) fails with store.ReasonExpired and the
// caller should list again and watch from the list's resourceVersion.
//
// Events arrive in resourceVersion order with none skipped. A watcher
// that falls more than Options.WatchBuffer events behind is not allowed
// to slow writers down: it still receives the events it already holds,
// in order, and then its channel is closed, exactly as when the store
// closes. A consumer that sees the channel close without having called
// Stop should watch again from the last resourceVersion it received.
//
// Label-selector filtering is done on each event's object as it is after
// the change: an object whose labels stop matching is simply no longer
// reported (no synthetic DELETED, unlike the kube-apiserver).
func (s *Store) Watch(ctx context.Context, kind string, opts store.WatchOptions) (store.Watcher, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ki, err := kindInfo(kind)
	if err != nil {
		return nil, err
	}
	from, err := parseRV(opts.ResourceVersion)
	if err != nil {
		return nil, err
	}
	w := &watcher{
		kind:   ki.Kind,
		opts:   opts.ListOptions,
		live:   make(chan store.Event, s.opts.WatchBuffer),
		result: make(chan store.Event),
		done:   make(chan struct{}),
		bc:     &s.bc,
	}
	// Take a read snapshot and subscribe while no write can commit: live
	// events are then exactly those after the snapshot.
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errClosed
	}
	tx, err := s.db.Begin(false)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	s.bc.subscribe(w)
	s.mu.Unlock()

	replay, err := readReplay(tx, ki, opts, from)
	_ = tx.Rollback()
	if err != nil {
		s.bc.unsubscribe(w)
		return nil, err
	}
	go w.run(ctx, replay)
	return w, nil
}

// readReplay returns the events a new watch sends before live ones.
func readReplay(tx *bolt.Tx, ki v1.KindInfo, opts store.WatchOptions, from uint64) ([]store.Event, error) {
	current := readRV(tx)
	var out []store.Event
	if opts.ResourceVersion == "" {
		prefix := ""
		if opts.Namespace != "" {
			prefix = opts.Namespace + "/"
		}
		c := tx.Bucket([]byte(ki.Kind)).Cursor()
		for k, v := c.Seek([]byte(prefix)); k != nil && len(k) >= len(prefix) && string(k[:len(prefix)]) == prefix; k, v = c.Next() {
			obj, err := decode(ki, v)
			if err != nil {
				return nil, err
			}
			if opts.Matches(obj) {
				out = append(out, store.Event{Type: store.Added, Object: obj})
			}
		}
		bm := ki.New()
		bm.SetResourceVersion(strconv.FormatUint(current, 10))
		v1.SetTypeMeta(bm)
		return append(out, store.Event{Type: store.Bookmark, Object: bm}), nil
	}
	if from > current {
		return nil, store.Errorf(store.ReasonExpired, "resourceVersion %d is newer than the store's %d: list again and watch from the list's resourceVersion", from, current)
	}
	if from == current {
		return nil, nil
	}
	c := tx.Bucket(eventsBucket).Cursor()
	first, _ := c.First()
	if first == nil || binary.BigEndian.Uint64(first) > from+1 {
		oldest := uint64(0)
		if first != nil {
			oldest = binary.BigEndian.Uint64(first)
		}
		return nil, store.Errorf(store.ReasonExpired, "resourceVersion %d is too old: the oldest change kept is %d; list again and watch from the list's resourceVersion", from, oldest)
	}
	for k, v := c.Seek(rvBytes(from + 1)); k != nil; k, v = c.Next() {
		var e logEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, fmt.Errorf("decode event %d: %w", binary.BigEndian.Uint64(k), err)
		}
		if e.Kind != ki.Kind {
			continue
		}
		obj, err := decode(ki, e.Object)
		if err != nil {
			return nil, err
		}
		if opts.Matches(obj) {
			out = append(out, store.Event{Type: e.Type, Object: obj})
		}
	}
	return out, nil
}

// watcher is one Watch. The broadcaster fills live (buffered) and closes
// it on overflow or store close; run forwards replay then live to result.
type watcher struct {
	kind string
	opts store.ListOptions
	live chan store.Event
	bc   *broadcaster

	result   chan store.Event
	done     chan struct{}
	stopOnce sync.Once
}

func (w *watcher) ResultChan() <-chan store.Event { return w.result }

func (w *watcher) Stop() { w.stopOnce.Do(func() { close(w.done) }) }

func (w *watcher) run(ctx context.Context, replay []store.Event) {
	defer close(w.result)
	defer w.bc.unsubscribe(w)
	send := func(ev store.Event) bool {
		select {
		case w.result <- ev:
			return true
		case <-w.done:
		case <-ctx.Done():
		}
		return false
	}
	for _, ev := range replay {
		if !send(ev) {
			return
		}
	}
	for {
		select {
		case ev, ok := <-w.live:
			if !ok || !send(ev) {
				return
			}
		case <-w.done:
			return
		case <-ctx.Done():
			return
		}
	}
}

// broadcaster hands committed changes to live watchers without ever
// blocking the writer.
type broadcaster struct {
	mu   sync.Mutex
	subs map[*watcher]struct{}
}

func (b *broadcaster) subscribe(w *watcher) {
	b.mu.Lock()
	b.subs[w] = struct{}{}
	b.mu.Unlock()
}

func (b *broadcaster) unsubscribe(w *watcher) {
	b.mu.Lock()
	delete(b.subs, w)
	b.mu.Unlock()
}

// publish delivers ch to every interested watcher; one whose buffer is
// full is dropped and its live channel closed.
func (b *broadcaster) publish(ch *change) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var obj v1.Object
	for w := range b.subs {
		if w.kind != ch.kind.Kind {
			continue
		}
		if obj == nil {
			var err error
			if obj, err = decode(ch.kind, ch.data); err != nil {
				return // cannot happen: we just encoded it
			}
		}
		if !w.opts.Matches(obj) {
			continue
		}
		select {
		case w.live <- store.Event{Type: ch.typ, Object: obj.DeepCopyObject().(v1.Object)}:
		default:
			close(w.live)
			delete(b.subs, w)
		}
	}
}

func (b *broadcaster) closeAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for w := range b.subs {
		close(w.live)
		delete(b.subs, w)
	}
}
