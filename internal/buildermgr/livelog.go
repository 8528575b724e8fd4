package buildermgr

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"

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
// the output of the package's build. With follow, a pending package is
// waited for, a running build is streamed live to its end, and a finished
// one answers its stored log; without follow, what there is now.
func (m *Manager) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		q := r.URL.Query()
		ns := q.Get("namespace")
		if ns == "" {
			ns = v1.DefaultNamespace
		}
		name := q.Get("name")
		if name == "" {
			http.Error(w, "query parameter name (the package) is required", http.StatusBadRequest)
			return
		}
		follow := q.Get("follow") == "true"
		flush := func() {
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
		}
		headerSent := false
		sendHeader := func() {
			if !headerSent {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.Header().Set("X-Content-Type-Options", "nosniff")
				w.WriteHeader(http.StatusOK)
				flush()
				headerSent = true
			}
		}
		for {
			obj, err := m.cfg.Store.Get(r.Context(), v1.KindPackage, ns, name)
			if err != nil {
				if headerSent {
					return
				}
				code := http.StatusInternalServerError
				if store.IsNotFound(err) {
					code = http.StatusNotFound
				}
				http.Error(w, err.Error(), code)
				return
			}
			pkg := obj.(*v1.Package)
			switch pkg.Status.BuildStatus {
			case v1.BuildStatusRunning:
				if ll := m.Logs.Get(ns + "/" + name); ll != nil {
					sendHeader()
					// Followed to the build's end, or what there is now.
					_ = ll.CopyTo(r.Context(), w, follow, flush)
					return
				}
			case v1.BuildStatusPending, "":
			default:
				sendHeader()
				io.WriteString(w, pkg.Status.BuildLog)
				return
			}
			if !follow {
				sendHeader()
				return
			}
			// Pending (or running in a builder manager that has not
			// picked it up yet): wait for the build to start.
			sendHeader()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}
