package client

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

// Watch implements store.Store over the server's streaming watch. Errors
// the server answers before streaming (Expired, a bad selector …) are
// returned here. Once streaming, the channel closes when ctx ends, Stop
// is called, the server ends the stream, or the connection is idle for
// WatchIdleTimeout; a consumer that did not stop it should watch again
// from the last resourceVersion it received.
func (c *Client) Watch(ctx context.Context, kind string, opts store.WatchOptions) (store.Watcher, error) {
	ki, err := kindInfo(kind)
	if err != nil {
		return nil, err
	}
	q := url.Values{"watch": {"true"}}
	if opts.ResourceVersion != "" {
		q.Set("resourceVersion", opts.ResourceVersion)
	}
	if opts.LabelSelector != nil && !opts.LabelSelector.Empty() {
		q.Set("labelSelector", opts.LabelSelector.String())
	}
	ctx, cancel := context.WithCancel(ctx)
	req, err := c.request(ctx, http.MethodGet, collectionPath(ki, opts.Namespace), q, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		cancel()
		return nil, &netError{base: c.base, err: err}
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel()
		defer resp.Body.Close()
		return nil, decodeError(req, resp)
	}
	w := &watcher{result: make(chan store.Event), cancel: cancel}
	go w.run(ctx, ki, resp.Body, c.WatchIdleTimeout)
	return w, nil
}

type netError struct {
	base string
	err  error
}

func (e *netError) Error() string { return "isotope API at " + e.base + ": " + e.err.Error() }
func (e *netError) Unwrap() error { return e.err }

type watcher struct {
	result chan store.Event
	cancel context.CancelFunc
	once   sync.Once
}

func (w *watcher) ResultChan() <-chan store.Event { return w.result }

func (w *watcher) Stop() { w.once.Do(w.cancel) }

// touchReader records the time of every successful read.
type touchReader struct {
	r    io.Reader
	last *atomic.Int64
}

func (t touchReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.last.Store(time.Now().UnixNano())
	}
	return n, err
}

func (w *watcher) run(ctx context.Context, ki v1.KindInfo, body io.ReadCloser, idle time.Duration) {
	defer close(w.result)
	defer w.Stop()
	defer body.Close()

	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	if idle > 0 {
		// Watchdog: cancelling the request's context aborts a blocked read.
		go func() {
			t := time.NewTicker(idle / 4)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case now := <-t.C:
					if now.Sub(time.Unix(0, last.Load())) > idle {
						w.Stop()
						return
					}
				}
			}
		}()
	}
	dec := json.NewDecoder(touchReader{r: body, last: &last})
	for {
		var e struct {
			Type   store.EventType `json:"type"`
			Object json.RawMessage `json:"object"`
		}
		if err := dec.Decode(&e); err != nil {
			return
		}
		switch e.Type {
		case store.Added, store.Modified, store.Deleted, store.Bookmark:
		default: // ERROR or unknown: the stream is over
			return
		}
		obj, err := decodeObject(ki, e.Object)
		if err != nil {
			return
		}
		select {
		case w.result <- store.Event{Type: e.Type, Object: obj}:
		case <-ctx.Done():
			return
		}
	}
}
