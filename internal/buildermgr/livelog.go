package buildermgr

import (
	"context"
	"io"
	"net/http"
	"sync"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

// maxLiveLog caps what a live log keeps for late readers; the builder
// caps the log it returns separately.
const maxLiveLog = 4 << 20

// LiveLogs holds the output of builds in flight so the CLI can stream it
// (fission#2643: users could only read a build's log after it ended).
type LiveLogs struct {
	mu   sync.Mutex
	logs map[string]*LiveLog
}

// NewLiveLogs returns an empty registry.
func NewLiveLogs() *LiveLogs { return &LiveLogs{logs: map[string]*LiveLog{}} }

// Start begins a new live log for key (namespace/name), replacing any
// finished one.
func (l *LiveLogs) Start(key string) *LiveLog {
	ll := &LiveLog{changed: make(chan struct{})}
	l.mu.Lock()
	l.logs[key] = ll
	l.mu.Unlock()
	return ll
}

// Get returns the latest live log of key, or nil.
func (l *LiveLogs) Get(key string) *LiveLog {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.logs[key]
}

// LiveLog is one build's growing output.
type LiveLog struct {
	mu      sync.Mutex
	buf     []byte
	dropped bool
	done    bool
	changed chan struct{} // closed and replaced on every write
}

// Write appends build output.
func (ll *LiveLog) Write(p []byte) (int, error) {
	ll.mu.Lock()
	defer ll.mu.Unlock()
	if len(ll.buf)+len(p) > maxLiveLog {
		ll.dropped = true
	} else {
		ll.buf = append(ll.buf, p...)
	}
	close(ll.changed)
	ll.changed = make(chan struct{})
	return len(p), nil
}

// Finish marks the build ended; followers stop after the last bytes.
func (ll *LiveLog) Finish() {
	ll.mu.Lock()
	defer ll.mu.Unlock()
	ll.done = true
	close(ll.changed)
	ll.changed = make(chan struct{})
}

// CopyTo writes the log to w from the start, following it until the build
// ends or ctx is done when follow is set.
func (ll *LiveLog) CopyTo(ctx context.Context, w io.Writer, follow bool, flush func()) error {
	off := 0
	for {
		ll.mu.Lock()
		chunk := ll.buf[off:]
		done := ll.done
		changed := ll.changed
		ll.mu.Unlock()
		if len(chunk) > 0 {
			if _, err := w.Write(chunk); err != nil {
				return err
			}
			off += len(chunk)
			flush()
		}
		if done || !follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// Handler serves GET /v1/buildlogs?namespace=NS&name=PKG[&follow=true]:
// the live output of the package's current build, followed to its end; or,
// when no build of it ran in this process, the stored build log.
func (m *Manager) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		ns := r.URL.Query().Get("namespace")
		if ns == "" {
			ns = v1.DefaultNamespace
		}
		name := r.URL.Query().Get("name")
		if name == "" {
			http.Error(w, "query parameter name (the package) is required", http.StatusBadRequest)
			return
		}
		obj, err := m.cfg.Store.Get(r.Context(), v1.KindPackage, ns, name)
		if store.IsNotFound(err) {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		flush := func() {
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
		}
		if ll := m.Logs.Get(ns + "/" + name); ll != nil {
			_ = ll.CopyTo(r.Context(), w, r.URL.Query().Get("follow") == "true", flush)
			return
		}
		io.WriteString(w, obj.(*v1.Package).Status.BuildLog)
	})
}
