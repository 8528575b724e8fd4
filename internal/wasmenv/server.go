// Package wasmenv is the `isotope wasm-env` environment server: a Fission
// environment runtime (fission.md §3a) whose functions are WebAssembly
// modules run by internal/wasm. It listens on :8888, answers /healthz,
// loads a function on POST /specialize (v1, the fixed file <userfunc>/user)
// or POST /v2/specialize (a JSON FunctionLoadRequest), and then serves
// every other path with that function. So one program is both a Fission
// environment image and Isotope's own wasm-env pod.
package wasmenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"isotope.dev/isotope/internal/wasm"
)

// Config configures a Server.
type Config struct {
	// Runtime runs the function; required.
	Runtime *wasm.Runtime
	// UserfuncDir is where the fetcher puts the function: v1 specialize
	// loads <UserfuncDir>/user. Default "/userfunc".
	UserfuncDir string
	// Limits apply to the function's requests.
	Limits wasm.Limits
	// Env is the function's environment (nothing of the host's leaks in).
	Env map[string]string
	// Log receives the function's log lines (its stderr, traps, timeouts).
	Log io.Writer
	// Mounts maps a container path to where it really is, for a
	// specialize filepath that names a container path (/userfunc/...)
	// while this process runs outside a container: the node agent of the
	// Kubernetes tests runs pods as plain processes and says where their
	// volumes are in MountsEnv. Empty in a real pod.
	Mounts map[string]string
	// GuestDirs are the pod's directories shown to the function as
	// read-only preopens, by guest path: DefaultGuestDirs, Fission's
	// /secrets and /configs that the fetcher fills, as the embedded
	// runtime shows them. A directory that does not exist is left out.
	// nil means DefaultGuestDirs; an empty map, none.
	GuestDirs map[string]string
}

// DefaultGuestDirs are the function pod's secret and config map volumes
// (the fetcher writes <ns>/<name>/<key> files into them), at the same
// paths for the guest.
var DefaultGuestDirs = map[string]string{"/secrets": "/secrets", "/configs": "/configs"}

// MountsEnv is the environment variable holding Config.Mounts as a JSON
// object; internal/testing/nodeagent sets it.
const MountsEnv = "ISOTOPE_NODEAGENT_MOUNTS"

// hostPath is p with a container mount path prefix replaced by where
// that mount is (Config.Mounts); the longest matching mount wins.
func (s *Server) hostPath(p string) string {
	best := ""
	for mp := range s.cfg.Mounts {
		if (p == mp || strings.HasPrefix(p, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
			best = mp
		}
	}
	if best == "" {
		return p
	}
	return s.cfg.Mounts[best] + p[len(best):]
}

// FunctionLoadRequest is the body of POST /v2/specialize, with Fission's
// JSON keys (FunctionMetadata has no tag upstream, so its key is literal).
type FunctionLoadRequest struct {
	FilePath         string        `json:"filepath"`
	FunctionName     string        `json:"functionName"`
	URL              string        `json:"url"`
	FunctionMetadata *FunctionMeta `json:"FunctionMetadata,omitempty"`
	EnvVersion       int           `json:"envVersion"`
}

// FunctionMeta is the part of the Function's ObjectMeta the server uses.
type FunctionMeta struct {
	Name            string `json:"name,omitempty"`
	Namespace       string `json:"namespace,omitempty"`
	UID             string `json:"uid,omitempty"`
	ResourceVersion string `json:"resourceVersion,omitempty"`
}

// Server is the environment's HTTP handler.
type Server struct {
	cfg Config
	mu  sync.Mutex // serializes specialization
	mod *wasm.Module
	// ready is the loaded module, read without the lock on every request.
	ready atomic.Pointer[wasm.Module]
}

// New returns a generic (unspecialized) Server.
func New(cfg Config) *Server {
	if cfg.UserfuncDir == "" {
		cfg.UserfuncDir = "/userfunc"
	}
	if cfg.GuestDirs == nil {
		cfg.GuestDirs = DefaultGuestDirs
	}
	return &Server{cfg: cfg}
}

// ServeHTTP routes Fission's runtime protocol.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz":
		w.WriteHeader(http.StatusOK)
		return
	case "/specialize":
		if r.Method == http.MethodPost {
			s.specialize(w, r, FunctionLoadRequest{FilePath: filepath.Join(s.cfg.UserfuncDir, "user")})
			return
		}
	case "/v2/specialize":
		if r.Method == http.MethodPost {
			var req FunctionLoadRequest
			if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
				http.Error(w, "v2/specialize: body is not a JSON FunctionLoadRequest: "+err.Error(), http.StatusBadRequest)
				return
			}
			if req.FilePath == "" {
				http.Error(w, "v2/specialize: field \"filepath\" is required", http.StatusBadRequest)
				return
			}
			s.specialize(w, r, req)
			return
		}
	}
	m := s.ready.Load()
	if m == nil {
		http.Error(w, "Generic container: no requests supported", http.StatusInternalServerError)
		return
	}
	m.ServeHTTP(&markFailures{ResponseWriter: w}, r)
}

// HostErrorHeader marks an answer the runtime made because the function
// failed (a trap, a timeout, an oversized or malformed response), so that
// the router in front of this pod logs it and shows the caller a short
// message instead (the router's HostErrorHeader; the names must agree).
const HostErrorHeader = "X-Isotope-Error"

// markFailures adds HostErrorHeader to the module's failure answers,
// which it writes with http.Error: a 5xx whose only headers are
// http.Error's. The function's own answers always carry Content-Length
// and pass unmarked.
type markFailures struct{ http.ResponseWriter }

func (m *markFailures) WriteHeader(code int) {
	h := m.Header()
	if code >= 500 && len(h) == 2 && h.Get("Content-Type") == "text/plain; charset=utf-8" && h.Get("X-Content-Type-Options") == "nosniff" {
		h.Set(HostErrorHeader, "failed")
	}
	m.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the server's writer.
func (m *markFailures) Unwrap() http.ResponseWriter { return m.ResponseWriter }

func (s *Server) specialize(w http.ResponseWriter, r *http.Request, req FunctionLoadRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mod != nil {
		http.Error(w, "Not a generic container", http.StatusBadRequest)
		return
	}
	m, err := s.load(r.Context(), req)
	if err != nil {
		fmt.Fprintf(logOr(s.cfg.Log), "specialize failed: %v\n", err)
		http.Error(w, "specialize: "+err.Error(), http.StatusInternalServerError)
		return
	}
	s.mod = m
	s.ready.Store(m)
	w.WriteHeader(http.StatusOK)
}

func (s *Server) load(ctx context.Context, req FunctionLoadRequest) (*wasm.Module, error) {
	path := s.hostPath(req.FilePath)
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("filepath %s: %w", req.FilePath, err)
	}
	archiveDir := ""
	if st.IsDir() {
		archiveDir = path
	}
	name := "user"
	if md := req.FunctionMetadata; md != nil && md.Name != "" {
		name = md.Name
		if md.Namespace != "" {
			name = md.Namespace + "/" + md.Name
		}
	}
	var mounts map[string]string
	for guest, dir := range s.cfg.GuestDirs {
		host := s.hostPath(dir)
		if st, err := os.Stat(host); err == nil && st.IsDir() {
			if mounts == nil {
				mounts = map[string]string{}
			}
			mounts[guest] = host
		}
	}
	return s.cfg.Runtime.Load(ctx, wasm.LoadRequest{
		Path:       path,
		Name:       name,
		Entrypoint: req.FunctionName,
		Env:        s.cfg.Env,
		ArchiveDir: archiveDir,
		Mounts:     mounts,
		Limits:     s.cfg.Limits,
		Log:        s.cfg.Log,
	})
}

// Module is the loaded function, or nil before specialization.
func (s *Server) Module() *wasm.Module {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mod
}

// Close unloads the function.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mod != nil {
		return s.mod.Close()
	}
	return nil
}

func logOr(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
