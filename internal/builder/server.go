package builder

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
)

// Handler serves Fission's builder API (see the package doc).
func (b *Builder) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{$}", b.serveBuild)
	mux.HandleFunc("DELETE /clean", func(w http.ResponseWriter, r *http.Request) {
		if err := b.Clean(r.URL.Query().Get("name")); err != nil {
			code := http.StatusInternalServerError
			var re *RequestError
			if errors.As(err, &re) {
				code = re.Code
			}
			http.Error(w, err.Error(), code)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("GET /logs", b.serveLogs)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(versionInfo())
	})
	return mux
}

func (b *Builder) serveBuild(w http.ResponseWriter, r *http.Request) {
	var req PackageBuildRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		http.Error(w, fmt.Sprintf("bad request body: %v", err), http.StatusBadRequest)
		return
	}
	resp, err := b.Build(r.Context(), req, nil)
	code := http.StatusOK
	if err != nil {
		var re *RequestError
		if errors.As(err, &re) {
			http.Error(w, re.Msg, re.Code)
			return
		}
		code = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(resp)
}

// serveLogs streams a build's output: what was written so far, then
// everything until the build ends. A finished build's (capped) log is
// answered at once.
func (b *Builder) serveLogs(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	b.mu.Lock()
	l := b.logs[name]
	b.mu.Unlock()
	if l == nil {
		http.Error(w, fmt.Sprintf("no running or recent build of %q", name), http.StatusNotFound)
		return
	}
	backlog, ch, stop := l.follow()
	defer stop()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	io.WriteString(w, backlog)
	rc := http.NewResponseController(w)
	rc.Flush()
	for {
		select {
		case p, ok := <-ch:
			if !ok {
				return
			}
			if _, err := w.Write(p); err != nil {
				return
			}
			rc.Flush()
		case <-r.Context().Done():
			return
		}
	}
}

// VersionInfo is what /version answers.
type VersionInfo struct {
	Version   string `json:"version"`
	GoVersion string `json:"goVersion"`
}

func versionInfo() VersionInfo {
	v := VersionInfo{Version: "devel"}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v.GoVersion = bi.GoVersion
		if bi.Main.Version != "" {
			v.Version = bi.Main.Version
		}
	}
	return v
}
