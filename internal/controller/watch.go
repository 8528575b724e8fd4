package controller

import (
	"context"
	"slices"
	"strings"
	"time"

	"isotope.dev/isotope/internal/store"
)

// watch feeds the queue from watches of the kind until ctx ends.
//
// The first watch starts from "" (the store sends an ADDED event per
// object, then a BOOKMARK: the list). When a stream ends, the next
// watch starts from the last resourceVersion delivered, so nothing is
// missed or repeated; when the store answers that version Expired, or a
// stream ended before its list was complete, it lists again and
// enqueues, besides every listed object, every key it knew that the new
// list lacks: objects deleted while no watch could say so.
func (c *Controller) watch(ctx context.Context) {
	rv := ""
	delay := watchRetryMin
	for ctx.Err() == nil {
		w, err := c.cfg.Store.Watch(ctx, c.cfg.Kind, store.WatchOptions{ResourceVersion: rv})
		if store.IsExpired(err) {
			c.log.Info("watch expired; listing again", "kind", c.cfg.Kind, "resourceVersion", rv)
			rv = ""
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("watch failed; retrying", "kind", c.cfg.Kind, "resourceVersion", rv, "err", err, "in", delay)
			}
			delay = wait(ctx, delay)
			continue
		}
		var delivered bool
		rv, delivered = c.drain(ctx, w, rv)
		w.Stop()
		if delivered {
			delay = watchRetryMin
		} else {
			// A stream that closes at once, again and again, is not a
			// reason to spin.
			delay = wait(ctx, delay)
		}
	}
}

// wait sleeps for d or until ctx ends, and returns the next delay.
func wait(ctx context.Context, d time.Duration) time.Duration {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	return min(d*2, watchRetryMax)
}

// drain enqueues w's events until its stream ends and returns the
// version to resume from ("" to list again) and whether any event came.
func (c *Controller) drain(ctx context.Context, w store.Watcher, from string) (rv string, delivered bool) {
	rv = from
	// A watch from "" starts with the list: ADDED events up to the first
	// BOOKMARK. Objects' own versions are not positions in the stream,
	// so rv moves only at the BOOKMARK; a stream that ends sooner is
	// listed again.
	var listed map[Key]struct{}
	if from == "" {
		listed = map[Key]struct{}{}
	}
	for {
		var (
			ev store.Event
			ok bool
		)
		select {
		case <-ctx.Done():
			return rv, delivered
		case ev, ok = <-w.ResultChan():
		}
		if !ok {
			return rv, delivered
		}
		if ev.Object == nil {
			continue
		}
		delivered = true
		if ev.Type == store.Bookmark {
			if listed != nil {
				c.forgetUnlisted(listed)
				listed = nil
			}
			rv = ev.Object.GetResourceVersion()
			continue
		}
		key := KeyOf(ev.Object)
		if listed != nil {
			listed[key] = struct{}{}
		} else {
			rv = ev.Object.GetResourceVersion()
		}
		if ev.Type == store.Deleted {
			delete(c.known, key)
		} else {
			c.known[key] = struct{}{}
		}
		c.enqueue(ev)
	}
}

// forgetUnlisted enqueues, in key order, the keys known before a list
// that the list lacks, and forgets them.
func (c *Controller) forgetUnlisted(listed map[Key]struct{}) {
	var gone []Key
	for k := range c.known {
		if _, ok := listed[k]; !ok {
			gone = append(gone, k)
			delete(c.known, k)
		}
	}
	slices.SortFunc(gone, func(a, b Key) int {
		if n := strings.Compare(a.Namespace, b.Namespace); n != 0 {
			return n
		}
		return strings.Compare(a.Name, b.Name)
	})
	for _, k := range gone {
		c.log.Info("deleted while unwatched", "kind", c.cfg.Kind, "namespace", k.Namespace, "name", k.Name)
		c.queue.Add(k)
	}
}
