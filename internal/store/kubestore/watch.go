package kubestore

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

// Watch implements store.Store.
//
// With ResourceVersion "" it lists, sends an ADDED event per object (by
// namespace, then name), a BOOKMARK at the list's resourceVersion, then
// the changes after it, from a kube-apiserver watch opened at that
// version. With a resourceVersion it replays the changes after it from
// the apiserver's watch cache or etcd, then live ones.
//
// A version that is too old answers store.ReasonExpired. The apiserver
// reports that in two ways: when etcd has compacted the version, a
// pre-flight list at exactly that version fails with 410, which Watch
// returns; when the version is only older than the apiserver's watch
// cache, the 410 arrives as the stream's first event: the channel then
// closes without events, and the next Watch of the kind from that
// version (or an older one) answers ReasonExpired at once. "0", which
// the kube-apiserver reads as "any state", is always Expired here: no
// store keeps history from the beginning.
//
// Differences from the embedded store: an object whose labels stop
// matching a selector is reported as DELETED (the apiserver's rule); the
// stream ends when the apiserver times the watch out (after 30 to 60
// minutes) and the consumer watches again from the last version seen.
func (s *Store) Watch(ctx context.Context, kind string, opts store.WatchOptions) (store.Watcher, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ki, err := kindInfo(kind)
	if err != nil {
		return nil, err
	}
	ns, err := s.namespace(opts.Namespace, "")
	if err != nil {
		return nil, err
	}
	list, err := newList(ki)
	if err != nil {
		return nil, err
	}
	lo := listOptions(ns, opts.ListOptions)

	var initial []store.Event
	from := opts.ResourceVersion
	if from == "" {
		if err := s.c.List(ctx, list, lo...); err != nil {
			return nil, mapError(err, ki, ns, "", "")
		}
		objs, err := items(list)
		if err != nil {
			return nil, err
		}
		sortObjects(objs)
		for _, o := range objs {
			initial = append(initial, store.Event{Type: store.Added, Object: o})
		}
		from = list.GetResourceVersion()
		bm := ki.New()
		bm.SetResourceVersion(from)
		v1.SetTypeMeta(bm)
		initial = append(initial, store.Event{Type: store.Bookmark, Object: bm})
	} else {
		n, err := strconv.ParseUint(from, 10, 64)
		if err != nil {
			return nil, &store.Error{Reason: store.ReasonBadRequest, Message: fmt.Sprintf("invalid resourceVersion %q: must be a decimal number", from)}
		}
		if err := s.checkNotExpired(ctx, ki, n, ns, lo); err != nil {
			return nil, err
		}
	}

	kw, err := s.c.Watch(ctx, list, append(lo, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: from}})...)
	if err != nil {
		return nil, mapError(err, ki, ns, "", "")
	}
	w := &watcher{
		s:       s,
		kind:    ki.Kind,
		from:    from,
		kw:      kw,
		initial: initial,
		result:  make(chan store.Event),
		done:    make(chan struct{}),
	}
	go w.run(ctx)
	return w, nil
}

// checkNotExpired answers ReasonExpired for a version known to be too
// old: one a previous watch stream was refused from, or one etcd has
// compacted (a list at exactly that version is refused with 410).
func (s *Store) checkNotExpired(ctx context.Context, ki v1.KindInfo, rv uint64, ns string, lo []client.ListOption) error {
	if rv == 0 {
		return store.Errorf(store.ReasonExpired, "resourceVersion 0 is too old: list again and watch from the list's resourceVersion (%s)", ki.Plural)
	}
	s.mu.Lock()
	old := s.expired[ki.Kind]
	s.mu.Unlock()
	if rv <= old {
		return store.Errorf(store.ReasonExpired, "resourceVersion %d is too old for the kube-apiserver's watch cache: list again and watch from the list's resourceVersion (%s)", rv, ki.Plural)
	}
	probe, err := newList(ki)
	if err != nil {
		return err
	}
	exact := &client.ListOptions{Limit: 1, Raw: &metav1.ListOptions{
		ResourceVersion:      strconv.FormatUint(rv, 10),
		ResourceVersionMatch: metav1.ResourceVersionMatchExact,
	}}
	if err := s.c.List(ctx, probe, append(lo, exact)...); err != nil {
		return mapError(err, ki, ns, "", "")
	}
	return nil
}

// markExpired records that watches of kind from rv or older are refused.
func (s *Store) markExpired(kind string, rv uint64) {
	s.mu.Lock()
	if rv > s.expired[kind] {
		s.expired[kind] = rv
	}
	s.mu.Unlock()
}

// watcher adapts a kube-apiserver watch to store.Watcher.
type watcher struct {
	s       *Store
	kind    string
	from    string
	kw      watch.Interface
	initial []store.Event

	result   chan store.Event
	done     chan struct{}
	stopOnce sync.Once
}

func (w *watcher) ResultChan() <-chan store.Event { return w.result }

func (w *watcher) Stop() { w.stopOnce.Do(func() { close(w.done) }) }

func (w *watcher) run(ctx context.Context) {
	defer close(w.result)
	defer w.kw.Stop()
	send := func(ev store.Event) bool {
		select {
		case w.result <- ev:
			return true
		case <-w.done:
		case <-ctx.Done():
		}
		return false
	}
	for _, ev := range w.initial {
		if !send(ev) {
			return
		}
	}
	for {
		var (
			kev watch.Event
			ok  bool
		)
		select {
		case kev, ok = <-w.kw.ResultChan():
		case <-w.done:
			return
		case <-ctx.Done():
			return
		}
		if !ok {
			return
		}
		var typ store.EventType
		switch kev.Type {
		case watch.Added:
			typ = store.Added
		case watch.Modified:
			typ = store.Modified
		case watch.Deleted:
			typ = store.Deleted
		case watch.Bookmark:
			continue // not requested; never forwarded mid-stream
		case watch.Error:
			w.streamError(kev)
			return
		default:
			continue
		}
		obj := fromClient(kev.Object)
		if obj == nil {
			return
		}
		if !send(store.Event{Type: typ, Object: obj}) {
			return
		}
	}
}

// streamError handles an ERROR event: a 410 marks the starting version
// expired so that the consumer's next Watch says so; the stream ends
// either way.
func (w *watcher) streamError(kev watch.Event) {
	err := apierrors.FromObject(kev.Object)
	var as apierrors.APIStatus
	if !errors.As(err, &as) || as.Status().Code != http.StatusGone {
		return
	}
	if n, perr := strconv.ParseUint(w.from, 10, 64); perr == nil {
		w.s.markExpired(w.kind, n)
	}
}
